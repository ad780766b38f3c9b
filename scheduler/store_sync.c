/*
 * store_sync.c -- the store's deferred durability: one fdatasync of the WAL
 * for every commit made since the last, and the WAL's checkpoints, both
 * off the committing thread (the daemon runs them on worker threads; see
 * store_defer_sync and store_checkpoint in store.h).
 */
#include "scheduler/store_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The WAL's length in pages after a commit on the store's connection.
 * Installing it also ends SQLite's automatic checkpoints there. */
static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct store *s = arg;

	(void)db;
	(void)name;
	s->wal_frames = frames;
	return SQLITE_OK;
}

/* From here on a commit writes the WAL but does not wait for the disk
 * (synchronous = NORMAL, which still syncs around every checkpoint); the
 * caller makes its commits durable with store_sync() before it acts on
 * them.  Commits stay atomic and ordered: a crash before the sync loses
 * the transactions not yet synced, whole, and nothing else.  Checkpoints
 * are the caller's too (store_checkpoint). */
int store_defer_sync(struct store *s)
{
	size_t n = strlen(s->path) + sizeof "-wal";
	int rc;

	if (s->wal_path == NULL) {
		if ((s->wal_path = malloc(n)) == NULL)
			return st_fail(s, SQLITE_OK, "store_defer_sync: out of memory");
		snprintf(s->wal_path, n, "%s-wal", s->path);
	}
	if (st_exec(s, "PRAGMA synchronous = NORMAL") < 0)
		return -1;
	if (s->ckpt_db == NULL) {
		rc = sqlite3_open_v2(s->path, &s->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
		                     NULL);
		/* A connection knows the WAL once it has read the database:
		 * until then a checkpoint through it copies nothing. */
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(s->ckpt_db, "SELECT count(*) FROM sqlite_schema", NULL, NULL,
			                  NULL);
		if (rc != SQLITE_OK) {
			st_fail(s, SQLITE_OK, "store_defer_sync: %s: a connection for checkpoints: %s",
			        s->path, s->ckpt_db ? sqlite3_errmsg(s->ckpt_db) : sqlite3_errstr(rc));
			sqlite3_close_v2(s->ckpt_db);
			s->ckpt_db = NULL;
			return -1;
		}
		sqlite3_extended_result_codes(s->ckpt_db, 1);
	}
	sqlite3_wal_hook(s->db, on_wal_commit, s);
	return 0;
}

/* SQLite's own threshold for its automatic checkpoint, in pages; and the
 * length past which the committing thread checkpoints for itself. */
#define CKPT_PAGES 1000
#define CKPT_PAGES_HERE (4 * CKPT_PAGES)

int store_checkpoint_due(const struct store *s)
{
	if (!s->ckpt_db || s->wal_frames < CKPT_PAGES)
		return STORE_CKPT_NONE;
	return s->wal_frames < CKPT_PAGES_HERE ? STORE_CKPT_ASIDE : STORE_CKPT_HERE;
}

/* What SQLite's automatic checkpoint does, through the store's own
 * connection: nothing commits meanwhile, so everything is copied and the
 * next commit starts the WAL over. */
int store_checkpoint_here(struct store *s)
{
	int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);

	if (rc == SQLITE_OK || (rc & 0xff) == SQLITE_BUSY)
		return 0;
	return st_fail(s, rc, "checkpoint of %s", s->path);
}

/* A passive checkpoint: it copies what no reader still needs and waits for
 * no one; the store's connection goes on committing meanwhile, and starts
 * the WAL over once everything in it is copied.  Touches only ckpt_db and
 * ckpt_err. */
int store_checkpoint(struct store *s)
{
	int wal = 0, rc = sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &wal,
	                                            NULL);

	if (rc == SQLITE_OK && wal < 0) {
		/* Not (or no longer) known as a WAL database: nothing was done. */
		snprintf(s->ckpt_err, sizeof s->ckpt_err,
		         "checkpoint of %s: the connection does not see a WAL", s->path);
		return -1;
	}
	/* BUSY: another checkpoint (a connection closing) has it; it copies. */
	if (rc == SQLITE_OK || (rc & 0xff) == SQLITE_BUSY) {
		s->ckpt_err[0] = '\0';
		return 0;
	}
	snprintf(s->ckpt_err, sizeof s->ckpt_err, "checkpoint of %s: %s", s->path,
	         sqlite3_errmsg(s->ckpt_db));
	return -1;
}

const char *store_checkpoint_err(const struct store *s)
{
	return s->ckpt_err[0] ? s->ckpt_err : "no error";
}

/* fsync(2) of the directory holding path. */
static int sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	int fd, rc;

	if (slash == NULL)
		snprintf(dir, sizeof dir, ".");
	else if (slash == path)
		snprintf(dir, sizeof dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* fdatasync of the WAL through *fdp, opened (again) when SQLite has made a
 * new one (its inode changed); without a WAL, of the database file. */
static int sync_wal(const struct store *s, int *fdp)
{
	struct stat a, b;

	if (*fdp >= 0 && (stat(s->wal_path, &a) < 0 || fstat(*fdp, &b) < 0 ||
	                  a.st_ino != b.st_ino || a.st_dev != b.st_dev)) {
		close(*fdp);
		*fdp = -1;
	}
	if (*fdp < 0) {
		if ((*fdp = open(s->wal_path, O_RDONLY | O_CLOEXEC)) < 0) {
			int fd, rc;

			/* No WAL (yet): whatever was committed is in the file. */
			if (errno != ENOENT || (fd = open(s->path, O_RDONLY | O_CLOEXEC)) < 0)
				return -1;
			rc = fdatasync(fd);
			close(fd);
			return rc;
		}
		/* A WAL first seen: its name in the directory must last too. */
		if (sync_dir(s->path) < 0)
			return -1;
	}
	return fdatasync(*fdp);
}

/* Every commit made so far reaches the disk: one fdatasync of the WAL, the
 * file all of them were appended to.  Touches no SQLite state, so it may
 * run on a worker thread while the store's own thread goes on committing
 * (one store_sync at a time).  Returns 0, or -1 with errno set. */
int store_sync(struct store *s)
{
	if (s->wal_path == NULL) {
		errno = EINVAL;
		return -1;
	}
	return sync_wal(s, &s->wal_fd);
}

/* The same through a file descriptor of its own: safe beside a
 * store_sync() running on another thread. */
int store_sync_now(struct store *s)
{
	int fd = -1, rc;

	if (s->wal_path == NULL) {
		errno = EINVAL;
		return -1;
	}
	rc = sync_wal(s, &fd);
	if (fd >= 0) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return rc;
}
