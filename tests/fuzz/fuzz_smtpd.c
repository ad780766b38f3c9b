/*
 * fuzz_smtpd.c -- the SMTP intake's command parser (smtpd_parse.c), AUTH's
 * base64 and PLAIN split (smtpd_auth.c) and the networks list (cidr.c).
 *
 * The input is one command line.  Whatever is accepted must be what the
 * session relies on: a path that fits its buffer, a mailbox the intake
 * takes (or the null sender on MAIL), parameters that parse again, a PLAIN
 * response split inside its buffer.
 */
#include "fuzz.h"

#include "cidr.h"
#include "smtpd_auth.h"
#include "smtpd_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = fuzz_text(data, size), addr[SMTPD_PATH_MAX], why[256];
	const char *arg, *params;
	unsigned char buf[1024];
	struct smtpd_mail_params mp;
	struct wu_cidr nets[WU_CIDR_MAX];
	enum smtpd_verb v;
	int n;

	if (!line)
		return 0;
	v = smtpd_verb(line, &arg);
	fuzz_check(v >= SMTPD_UNKNOWN && v < SMTPD_VERB_COUNT, "verb %d", (int)v);
	fuzz_check(arg >= line && arg <= line + strlen(line), "argument outside the line");
	for (int k = 0; k < 2; k++) {
		const char *kw = k ? "TO:" : "FROM:";

		if (smtpd_parse_path(arg, kw, addr, sizeof addr, &params, why, sizeof why) < 0) {
			fuzz_check(why[0] == '5' && strlen(why) > 4, "refused without a reply: '%s'",
			           why);
			continue;
		}
		fuzz_check(memchr(addr, '\0', sizeof addr), "path not terminated");
		fuzz_check((!addr[0] && !k) || smtpd_mailbox_ok(addr), "accepted '%s' as %s", addr,
		           kw);
		fuzz_check(params >= arg && params <= arg + strlen(arg), "params outside");
		if (!k && smtpd_parse_mail_params(params, &mp, why, sizeof why) < 0)
			fuzz_check(strncmp(why, "555 ", 4) == 0, "params refused with '%s'", why);
		if (k && smtpd_parse_rcpt_params(params, why, sizeof why) < 0)
			fuzz_check(strncmp(why, "555 ", 4) == 0, "params refused with '%s'", why);
	}
	n = smtpd_b64_decode(line, buf, sizeof buf);
	fuzz_check(n >= -1 && n < (int)sizeof buf, "decoded length %d", n);
	if (n >= 0) {
		const char *name, *pw;

		fuzz_check(buf[n] == '\0', "decoded text not terminated");
		if (smtpd_plain_split(buf, n, &name, &pw) == 0) {
			fuzz_check((const unsigned char *)name > buf &&
			               (const unsigned char *)pw <= buf + n,
			           "split outside the buffer");
			fuzz_check(name[0], "empty name accepted");
		}
	}
	n = wu_cidr_parse_list(line, nets, WU_CIDR_MAX, why, sizeof why);
	fuzz_check(n >= -1 && n <= WU_CIDR_MAX, "%d networks", n);
	for (int i = 0; i < n; i++)
		fuzz_check((nets[i].family == 2 && nets[i].bits <= 32) ||
		               (nets[i].family == 10 && nets[i].bits <= 128),
		           "network %d: family %d, /%d", i, nets[i].family, nets[i].bits);
	free(line);
	return 0;
}
