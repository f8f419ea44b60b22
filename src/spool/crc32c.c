/* crc32c.c - CRC-32C (see crc32c.h): the reflected polynomial 0x82F63B78,
 * initial value and final xor ~0, so crc32c(0, "123456789", 9) is
 * 0xE3069283 (RFC 3720 B.4).  Software slicing-by-8, or the SSE 4.2
 * instruction when the CPU has it. */
#include "spool/crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82F63B78u

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;
static int use_hw;

/* make_tables - the 8 lookup tables of slicing-by-8, and whether the CPU
 * has the instruction. */
static void make_tables(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[0][n] = c;
	}
	for (uint32_t n = 0; n < 256; n++)
		for (int t = 1; t < 8; t++)
			table[t][n] = (table[t - 1][n] >> 8) ^ table[0][table[t - 1][n] & 0xff];
#if defined(__x86_64__)
	use_hw = __builtin_cpu_supports("sse4.2");
#endif
}

/* crc_sw - the raw (not inverted) CRC over LEN bytes, 8 at a time. */
static uint32_t crc_sw(uint32_t c, const unsigned char *p, size_t len)
{
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		w ^= c; /* little-endian: the CRC meets the first four bytes */
		c = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
		    table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^
		    table[2][(w >> 40) & 0xff] ^ table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
	return c;
}

#if defined(__x86_64__)
/* crc_hw - the same with the crc32 instruction. */
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const unsigned char *p,
							 size_t len)
{
	uint64_t c64 = c;
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c64 = __builtin_ia32_crc32di(c64, w);
		p += 8;
		len -= 8;
	}
	c = (uint32_t)c64;
	while (len--)
		c = __builtin_ia32_crc32qi(c, *p++);
	return c;
}
#endif

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&table_once, make_tables);
	uint32_t c = ~crc;
#if defined(__x86_64__)
	if (use_hw)
		return ~crc_hw(c, buf, len);
#endif
	return ~crc_sw(c, buf, len);
}
