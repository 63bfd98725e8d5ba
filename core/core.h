/*
 * core/core.h - the toolbox every module includes: errors, logging,
 * configuration, metrics, the HTTP server and the vocabulary of a generation.
 */
#ifndef GF_CORE_H
#define GF_CORE_H

#include "err.h"
#include "log.h"
#include "config.h"
#include "metrics.h"
#include "httpd.h"
#include "proc.h"
#include "vocab.h"

#endif
