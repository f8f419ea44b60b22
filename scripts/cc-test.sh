#!/bin/sh
# cc-test.sh NAME FILE.c... - compile FILEs with the project's flags and
# sanitizers into build/solo/NAME and run it.  For working on one stage
# without building the whole tree.
set -e
name=$1; shift
mkdir -p build/solo
PKGS="libevent libevent_openssl libevent_pthreads libcares jansson libsodium sqlite3 openssl"
cc -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter \
	-fno-strict-aliasing -Isrc -pthread -O1 -g -fsanitize=address,undefined \
	-fno-omit-frame-pointer -fno-sanitize-recover=undefined $(pkg-config --cflags $PKGS) \
	"$@" -o "build/solo/$name" $(pkg-config --libs $PKGS) -lpthread -lm
exec "build/solo/$name"
