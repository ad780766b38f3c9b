/*
 * simulate.h -- `warmup simulate`: a whole migration rehearsed on a virtual
 * clock by the same router the daemon uses.  See README.md ("warmup simulate").
 */
#ifndef WU_SIMULATE_H
#define WU_SIMULATE_H

#include <stdio.h>

/* Runs `warmup simulate ARGS`; argv[0] is the command name.  Returns the
 * exit status: 0, 1 when something failed at run time, 2 for bad input. */
int wu_simulate_main(int argc, char **argv);

/* Prints the option summary. */
void wu_simulate_usage(FILE *f);

#endif
