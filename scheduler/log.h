/*
 * log.h -- leveled logging to stderr, for systemd or a terminal.
 *
 * Under systemd (JOURNAL_STREAM set) each line starts with the syslog
 * priority "<3>".."<7>" and the journal adds the time; elsewhere it starts
 * with an ISO 8601 UTC time and the level name.  Secrets never reach these
 * functions: callers log the source of a secret, never its value.
 */
#ifndef WU_LOG_H
#define WU_LOG_H

enum wu_log_level { WU_LOG_ERROR = 0, WU_LOG_WARN = 1, WU_LOG_INFO = 2, WU_LOG_DEBUG = 3 };

void wu_log_set_level(int level);
/* The level of a syslog-style number ([log] level: 3 error .. 7 debug). */
int wu_log_level_of(int syslog_level);
int wu_log_enabled(int level);
void wu_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define wu_error(...) wu_log(WU_LOG_ERROR, __VA_ARGS__)
#define wu_warn(...)  wu_log(WU_LOG_WARN, __VA_ARGS__)
#define wu_info(...)  wu_log(WU_LOG_INFO, __VA_ARGS__)
#define wu_debug(...) wu_log(WU_LOG_DEBUG, __VA_ARGS__)

#endif
