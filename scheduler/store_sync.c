/*
 * store_sync.c -- the store's deferred durability: one fdatasync of the WAL
 * for every commit made since the last (the daemon runs it on a worker
 * thread; see store_defer_sync in store.h).
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

/* From here on a commit writes the WAL but does not wait for the disk
 * (synchronous = NORMAL, which still syncs around every checkpoint); the
 * caller makes its commits durable with store_sync() before it acts on
 * them.  Commits stay atomic and ordered: a crash before the sync loses
 * the transactions not yet synced, whole, and nothing else. */
int store_defer_sync(struct store *s)
{
	size_t n = strlen(s->path) + sizeof "-wal";

	if (s->wal_path == NULL) {
		if ((s->wal_path = malloc(n)) == NULL)
			return st_fail(s, SQLITE_OK, "store_defer_sync: out of memory");
		snprintf(s->wal_path, n, "%s-wal", s->path);
	}
	return st_exec(s, "PRAGMA synchronous = NORMAL");
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
