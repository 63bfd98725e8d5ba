/*
 * core/include/core.h - the toolbox every module includes: errors, logging,
 * configuration, ids, the wall clock, URLs, metrics, the HTTP server and the
 * process shell, and the vocabulary of a generation (statuses, stages, events).
 */
#ifndef GF_CORE_H
#define GF_CORE_H

#include "err.h"
#include "log.h"
#include "config.h"
#include "ids.h"
#include "clock.h"
#include "url.h"
#include "metrics.h"
#include "httpd.h"
#include "proc.h"
#include "vocab.h"

#endif
