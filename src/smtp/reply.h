/* reply.h - an SMTP reply as a value: code, enhanced status, text. */
#ifndef TERN_SMTP_REPLY_H
#define TERN_SMTP_REPLY_H

struct smtp_reply {
	int code; /* 250, 550, ... ; 0 = no reply */
	const char *enhanced; /* "5.1.1" (RFC 3463), or NULL */
	const char *text; /* static string, no CR/LF */
};

#define SMTP_REPLY(c, e, t) ((struct smtp_reply){ (c), (e), (t) })

#endif
