/*
 * warmup.c -- the `warmup` command line: one program, several commands.
 *
 * NAME
 *	warmup - tools around the warmupd daemon
 *
 * SYNOPSIS
 *	warmup COMMAND [ARGS]
 *	warmup help [COMMAND]
 *	warmup --help | --version
 *
 * DESCRIPTION
 *	Each command lives in its own file and is one row of the table below:
 *	its name, its entry point (called with argv[0] = the command name) and
 *	a line of help.  `warmup help COMMAND` is `warmup COMMAND --help`.
 *
 * DIAGNOSTICS
 *	An unknown command prints the list of commands and exits with 2.
 *	Otherwise the exit status is the command's.
 */
#include <stdio.h>
#include <string.h>

#include "simulate.h"

int cmd_send(int argc, char **argv);     /* warmup_send.c */
int cmd_status(int argc, char **argv);   /* warmup_status.c */
int cmd_suppress(int argc, char **argv); /* warmup_suppress.c */
int cmd_pause(int argc, char **argv);    /* warmup_pause.c: pause and resume */
int cmd_reload(int argc, char **argv);   /* warmup_reload.c */

#ifndef WU_VERSION
#define WU_VERSION "0.1.0"
#endif

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
};

/* Add a command here: one row, and its file in tools/meson.build. */
static const struct command commands[] = {
    {"simulate", wu_simulate_main, "rehearse a migration on a virtual clock"},
    {"send", cmd_send, "POST SendGrid v3 mail/send bodies to warmupd"},
    {"status", cmd_status, "show what warmupd did today: cap, gate, routes, ISPs, queue"},
    {"suppress", cmd_suppress, "list, add, remove or import warmupd's suppressed addresses"},
    {"pause", cmd_pause, "stop a route of warmupd by hand (default: the new route)"},
    {"resume", cmd_pause, "restart a paused or gate-halted route of warmupd"},
    {"reload", cmd_reload, "have warmupd read its configuration file again"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* The list of commands, for --help and for mistakes. */
static void usage(FILE *f)
{
	fputs("usage: warmup COMMAND [ARGS]\n\ncommands:\n", f);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-10s  %s\n", commands[i].name, commands[i].help);
	fputs("\n'warmup help COMMAND' or 'warmup COMMAND --help' describes a command.\n", f);
}

/* The command called name, or NULL. */
static const struct command *find(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const struct command *c;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		puts("warmup " WU_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "help") == 0) {
		char help[] = "--help";
		char *args[3] = {argv[2], help, NULL};

		if (argc < 3) {
			usage(stdout);
			return 0;
		}
		if (!(c = find(argv[2]))) {
			fprintf(stderr, "warmup: no command '%s'\n\n", argv[2]);
			usage(stderr);
			return 2;
		}
		return c->run(2, args);
	}
	if (!(c = find(argv[1]))) {
		fprintf(stderr, "warmup: no command '%s'\n\n", argv[1]);
		usage(stderr);
		return 2;
	}
	return c->run(argc - 1, argv + 1);
}
