/*
 * tests/support/qt_proxy.h - a TCP proxy (one thread) in front of a
 * local port, whose connections can be made deaf one by one (see qt_proxy.c).
 */
#ifndef QT_PROXY_H
#define QT_PROXY_H

typedef struct qt_proxy qt_proxy_t;

/* Listens on a free loopback port and forwards each connection to `target_port`. NULL on error. */
qt_proxy_t *qt_proxy_start(int target_port);
int qt_proxy_port(const qt_proxy_t *p);
/* How many connections it has accepted; they are numbered 0, 1, … in that order. */
int qt_proxy_accepted(qt_proxy_t *p);
/* From now on, connection `index` forwards nothing either way (it stays open). */
void qt_proxy_deafen(qt_proxy_t *p, int index);
/* From now on, connection `index` forwards what its client sends and drops every answer. */
void qt_proxy_lose_answers(qt_proxy_t *p, int index);
void qt_proxy_stop(qt_proxy_t *p);

#endif
