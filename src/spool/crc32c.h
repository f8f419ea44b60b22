/* crc32c.h - CRC-32C (Castagnoli), the checksum of the spool's write-ahead
 * log records.
 *
 * CRC-32C is what ext4, btrfs and iSCSI use to tell a whole block from a
 * torn or stale one; x86-64 computes it in hardware (SSE 4.2), used here
 * when the CPU has it.  Thread-safe. */
#ifndef TERN_SPOOL_CRC32C_H
#define TERN_SPOOL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* crc32c - extend CRC (0 to start) over LEN bytes of BUF. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
