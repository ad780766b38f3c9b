/*
 * smtpd_parse.h -- the SMTP intake's command syntax (RFC 5321 4.1), pure.
 *
 * No I/O and no state: the session (smtpd.c) hands a command line in and
 * gets the verb, the path and the parameters out, or a reply saying what is
 * wrong.  Kept apart so that a fuzzer can drive it.
 */
#ifndef WU_SMTPD_PARSE_H
#define WU_SMTPD_PARSE_H

#include <stddef.h>

#define SMTPD_LINE_MAX 1000 /* octets of a command line, CRLF included (4.5.3.1.4) */
#define SMTPD_PATH_MAX 256  /* octets of a path, brackets included (4.5.3.1.3) */

/* The verbs the intake knows. */
enum smtpd_verb {
	SMTPD_UNKNOWN,
	SMTPD_EHLO,
	SMTPD_HELO,
	SMTPD_MAIL,
	SMTPD_RCPT,
	SMTPD_DATA,
	SMTPD_RSET,
	SMTPD_NOOP,
	SMTPD_QUIT,
	SMTPD_VRFY,
	SMTPD_EXPN,
	SMTPD_HELP,
	SMTPD_STARTTLS,
	SMTPD_AUTH,
	SMTPD_VERB_COUNT
};

/* A command line, CRLF removed: the verb and where its argument starts
 * (after one space; "" when there is none). */
enum smtpd_verb smtpd_verb(const char *line, const char **arg);

/* MAIL FROM:<path> [params] or RCPT TO:<path> [params].  keyword is
 * "FROM:" or "TO:".  On success the address (brackets removed, "" for the
 * null path <>) is copied to addr, and *params points at what follows.
 * Returns 0, or -1 with a reply ("501 5.1.7 ...") in why. */
int smtpd_parse_path(const char *arg, const char *keyword, char *addr, size_t addrlen,
                     const char **params, char *why, size_t whylen);

/* MAIL parameters: SIZE=n, BODY=7BIT|8BITMIME, SMTPUTF8, AUTH=<...>.
 * Returns 0, or -1 with a reply ("555 5.5.4 ...") in why. */
struct smtpd_mail_params {
	unsigned long long size; /* 0 when not given */
	int body_8bit, smtputf8;
};
int smtpd_parse_mail_params(const char *params, struct smtpd_mail_params *p, char *why,
                            size_t whylen);

/* RCPT parameters: none are supported; anything is 555. */
int smtpd_parse_rcpt_params(const char *params, char *why, size_t whylen);

/* 1 when addr is a mailbox the intake takes: local@domain, no blanks or
 * control characters, a domain with a dot or an address literal. */
int smtpd_mailbox_ok(const char *addr);

#endif
