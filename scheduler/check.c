/*
 * NAME
 *	check.c -- what `warmupd --check` looks at beyond the file itself: the
 *	store's directory, the files a start reads (users, certificate) and the
 *	listen ports.
 *
 * SYNOPSIS
 *	struct wu_conf_errors errs = {0};
 *
 *	wu_conf_load_all(&conf, path, WU_CONF_KEEP, &errs);
 *	check_store(&conf, &errs, 0);
 *	check_files(&conf, &errs);
 *	check_ports(&conf, &errs);
 *
 * DESCRIPTION
 *	wu_conf_load_all judges the file, the schedule and the secrets; these
 *	are the things a start would trip on next, the way `postfix check`
 *	looks at its queue directory.  Each problem is one more message in the
 *	list, naming the file, the line and the key.  A key whose line already
 *	has a message is not looked at again (its value is not the one meant).
 *
 *	check_store with create = 1 is the daemon's start: a missing last
 *	directory of the store path is made (mode 0750), as systemd's
 *	StateDirectory= would, so that --check and a start agree on what is
 *	fine.
 *
 *	check_ports binds each listen address and closes it at once; both stay
 *	bound until both are tried, so the HTTP and SMTP intakes on one port
 *	are caught.  Port 0 always binds.  A running warmupd holds its own
 *	ports: --check against a live daemon reports them as in use.
 */
#include "check.h"

#include "smtpd_auth.h"
#include "cluster_tls.h"
#include "tlsmem.h"

#include <errno.h>
#include <libgen.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Adds one message about a key of the file. */
#define KEYFAIL(c, e, line, ...) wu_conf_errors_add((e), (c)->path, (line), __VA_ARGS__)

int check_store(const struct wu_conf *c, struct wu_conf_errors *e, int create)
{
	char buf[sizeof(c->store_path)], dir[sizeof(c->store_path)], parent[sizeof(c->store_path)];
	struct stat st;

	if (wu_conf_errors_on(e, c->store_line))
		return 0;
	/* dirname() works in place: copy in, then copy its answer out. */
	snprintf(buf, sizeof(buf), "%s", c->store_path);
	snprintf(dir, sizeof(dir), "%s", dirname(buf));
	if (stat(dir, &st) < 0) {
		if (errno != ENOENT)
			return KEYFAIL(c, e, c->store_line, "[store] path: cannot look at %s: %s",
			               dir, strerror(errno));
		snprintf(buf, sizeof(buf), "%s", dir);
		snprintf(parent, sizeof(parent), "%s", dirname(buf));
		if (stat(parent, &st) < 0 || !S_ISDIR(st.st_mode))
			return KEYFAIL(c, e, c->store_line,
			               "[store] path: the directory %s does not exist, nor %s "
			               "to make it in",
			               dir, parent);
		if (access(parent, W_OK | X_OK) < 0)
			return KEYFAIL(c, e, c->store_line,
			               "[store] path: the directory %s does not exist, and %s is "
			               "not writable to make it (systemd's StateDirectory=warmup "
			               "makes /var/lib/warmup)",
			               dir, parent);
		if (create && mkdir(dir, 0750) < 0 && errno != EEXIST)
			return KEYFAIL(c, e, c->store_line, "[store] path: cannot make %s: %s", dir,
			               strerror(errno));
		return 0;
	}
	if (!S_ISDIR(st.st_mode))
		return KEYFAIL(c, e, c->store_line, "[store] path: %s is not a directory", dir);
	/* SQLite makes the -wal and -shm files next to the database. */
	if (access(dir, W_OK | X_OK) < 0)
		return KEYFAIL(c, e, c->store_line,
		               "[store] path: the directory %s is not writable", dir);
	if (stat(c->store_path, &st) == 0 &&
	    (!S_ISREG(st.st_mode) || access(c->store_path, R_OK | W_OK) < 0))
		return KEYFAIL(c, e, c->store_line,
		               "[store] path: %s is not a readable and writable file",
		               c->store_path);
	return 0;
}

/* Binds host:port; the socket, or -1 with a message added. */
static int bind_one(const struct wu_conf *c, struct wu_conf_errors *e, int line, const char *key,
                    const char *host, int port)
{
	struct addrinfo hints, *ai = NULL;
	char sport[16];
	int fd, one = 1, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(sport, sizeof(sport), "%d", port);
	if ((rc = getaddrinfo(host, sport, &hints, &ai)) != 0)
		return KEYFAIL(c, e, line, "%s: %s: %s", key, host, gai_strerror(rc));
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd >= 0) {
		/* As the daemon does: a port left in TIME_WAIT binds. */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			rc = errno;
			close(fd);
			fd = -1;
			errno = rc;
		}
	}
	freeaddrinfo(ai);
	if (fd < 0)
		return KEYFAIL(c, e, line, "%s: cannot listen on %s%s%s:%d: %s%s", key,
		               strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
		               port, strerror(errno),
		               errno == EADDRINUSE ? " (another program, or a running warmupd?)"
		               : errno == EACCES   ? " (ports below 1024 need privileges)"
		                                   : "");
	return fd;
}

int check_ports(const struct wu_conf *c, struct wu_conf_errors *e)
{
	int http = -1, smtp = -1, rc = 0;

	if (!wu_conf_errors_on(e, c->listen_line) &&
	    (http = bind_one(c, e, c->listen_line, "[listen] address", c->listen_host,
	                     c->listen_port)) < 0)
		rc = -1;
	if (c->smtpd.enabled && c->smtpd.address_line &&
	    !wu_conf_errors_on(e, c->smtpd.address_line) &&
	    (smtp = bind_one(c, e, c->smtpd.address_line, "[smtp] address", c->smtpd.host,
	                     c->smtpd.port)) < 0)
		rc = -1;
	if (http >= 0)
		close(http);
	if (smtp >= 0)
		close(smtp);
	return rc;
}

/* One users file ("name:crypt(3) hash" lines), loaded as a start would. */
static int check_users(const struct wu_conf *c, struct wu_conf_errors *e, int line,
                       const char *key, const char *path)
{
	struct smtpd_users *u = NULL;
	char why[512];

	if (!path[0] || wu_conf_errors_on(e, line))
		return 0;
	if (smtpd_users_load(&u, path, why, sizeof(why)) < 0)
		return KEYFAIL(c, e, line, "%s: %s", key, why);
	smtpd_users_free(u);
	return 0;
}

int check_files(const struct wu_conf *c, struct wu_conf_errors *e)
{
	int rc = 0;

	if (c->smtpd.enabled) {
		if (check_users(c, e, c->smtpd.users_line, "[smtp] users_file",
		                c->smtpd.users_file) < 0)
			rc = -1;
		if (c->smtpd.tls_cert_file[0] && c->smtpd.tls_key_file[0] &&
		    !wu_conf_errors_on(e, c->smtpd.tls_cert_line)) {
			struct tlsmem_ctx *ctx = NULL;
			char why[512];

			if (tlsmem_ctx_new(&ctx, c->smtpd.tls_cert_file, c->smtpd.tls_key_file, why,
			                      sizeof(why)) < 0)
				rc = KEYFAIL(c, e, c->smtpd.tls_cert_line, "%s",
				             why);
			tlsmem_ctx_free(ctx);
		}
	}
	if (check_users(c, e, c->status.viewers_line, "[status] viewers_file",
	                c->status.viewers_file) < 0)
		rc = -1;
	if (c->cluster.enabled && c->cluster.tls) {
		char why[1400];

		if (cluster_tls_check(&c->cluster, why, sizeof(why)) < 0)
			rc = KEYFAIL(c, e, c->cluster.tls_line, "%s", why);
	}
	return rc;
}
