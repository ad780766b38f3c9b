/*
 * strbuf.h -- the one growable buffer of text or bytes, for every part of
 * the product that builds a string of unknown length (MIME messages,
 * metrics, request and response bodies, SMTP sessions).
 *
 * The caller owns the struct; all zeros is an empty buffer, and nothing is
 * allocated until the first byte.  The bytes are always followed by a NUL
 * (not counted in len), so text can be read in place.  A failed
 * allocation is sticky: the buffer keeps what it had, every later append
 * does nothing and returns -ENOMEM, and strbuf_take() returns NULL, so a
 * builder can append freely and check once at the end.
 */
#ifndef WU_STRBUF_H
#define WU_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
	char *p;    /* the bytes and a NUL; NULL before the first append */
	size_t len; /* bytes held, the NUL not counted */
	size_t cap; /* bytes allocated */
	int failed; /* an allocation failed: appends do nothing */
};

/* Makes room for n more bytes (and the NUL) without changing the content,
 * so that a reader can write at p + len.  Returns 0 or -ENOMEM. */
int strbuf_reserve(struct strbuf *b, size_t n);
/* Appends n bytes.  Returns 0 or -ENOMEM. */
int strbuf_add(struct strbuf *b, const void *s, size_t n);
/* Appends a C string.  Returns 0 or -ENOMEM. */
int strbuf_str(struct strbuf *b, const char *s);
/* Appends printf-style text.  Returns 0, -ENOMEM, or -EINVAL for a format
 * vsnprintf refuses (the buffer is then failed too). */
int strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int strbuf_vprintf(struct strbuf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Drops the first n bytes (all of them when n >= len); the room stays. */
void strbuf_consume(struct strbuf *b, size_t n);
/* Empties the buffer, keeping its room; a failure is forgotten. */
void strbuf_reset(struct strbuf *b);
/* Hands the text over to the caller (to free()): "" for an empty buffer,
 * NULL when an append failed or "" could not be allocated.  The buffer is
 * empty afterwards. */
char *strbuf_take(struct strbuf *b);
/* Frees what the buffer holds and empties it; an empty buffer is fine. */
void strbuf_free(struct strbuf *b);

#endif
