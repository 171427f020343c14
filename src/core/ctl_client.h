/* `atrium ctl COMMAND...`: the client side of the runtime API
 * (core/control.h), for the command line. */
#ifndef ATR_CTL_CLIENT_H
#define ATR_CTL_CLIENT_H

/* Send the words as one command to the control socket at path and print
 * the answer (a refusal on stderr). Returns the exit status: 0 done, 1
 * refused or no answer. */
int atr_ctl_main(const char *path, int argc, char **argv);

#endif
