/*
 * tests/support/proc_status.h - a process's memory as Linux reports it in
 * /proc/<pid>/status, for the tests and load generators that watch a
 * process's RSS or peak.
 */
#ifndef GF_TESTS_PROC_STATUS_H
#define GF_TESTS_PROC_STATUS_H

/* The kB figure of `field` ("VmRSS", "VmHWM", ...) in /proc/<pid>/status, or of the calling
 * process with pid 0; -1 if the file cannot be read (the process is gone) or has no such field. */
long proc_status_kib(long pid, const char *field);

#endif
