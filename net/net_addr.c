/*
 * net/net_addr.c - which addresses and URLs an outbound request may go to
 * (see net.h): the public-address rule that open_public (net.c) applies at
 * connect time and that net_url_check applies to an address literal at
 * submit. Policy only: no transfer, no engine.
 */
#include "net.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int v4_is_public(uint32_t a)
{
    return !((a >> 24) == 0 ||                   /* 0.0.0.0/8 */
             (a >> 24) == 10 ||                  /* 10/8 */
             (a >> 24) == 127 ||                 /* loopback */
             (a & 0xFFC00000u) == 0x64400000u || /* 100.64/10, CGNAT */
             (a >> 16) == 0xA9FEu ||             /* 169.254/16, link-local */
             (a & 0xFFF00000u) == 0xAC100000u || /* 172.16/12 */
             (a & 0xFFFFFF00u) == 0xC0000000u || /* 192.0.0.0/24 */
             (a >> 16) == 0xC0A8u ||             /* 192.168/16 */
             (a & 0xFFFE0000u) == 0xC6120000u || /* 198.18/15 */
             (a >> 28) >= 0xEu);                 /* multicast, reserved, broadcast */
}

int net_addr_is_public(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return v4_is_public(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    if (sa->sa_family != AF_INET6)
        return 0;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    const uint8_t *b = a->s6_addr;
    /* Forms that carry an IPv4 address: mapped, compatible, NAT64 (64:ff9b::/96, a
     * gateway dials the v4 address) and 6to4 (2002:AABB:CCDD::/48). */
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
    if (IN6_IS_ADDR_V4MAPPED(a) || IN6_IS_ADDR_V4COMPAT(a) || memcmp(b, nat64, 12) == 0)
        return v4_is_public((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 |
                            b[15]);
    if (b[0] == 0x20 && b[1] == 0x02)
        return v4_is_public((uint32_t)b[2] << 24 | (uint32_t)b[3] << 16 | (uint32_t)b[4] << 8 |
                            b[5]);
    /* SIIT's IPv4-translated form (::ffff:0:a.b.c.d) carries one too. */
    static const uint8_t translated[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
    if (memcmp(b, translated, 12) == 0)
        return v4_is_public((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 |
                            b[15]);
    /* Prefixes that lead into someone's network, or nowhere public: local-use NAT64
     * (64:ff9b:1::/48, RFC 8215, which a local gateway translates to any v4 address),
     * Teredo (2001::/32, a tunnel to an obfuscated v4 address), documentation
     * (2001:db8::/32) and discard-only (100::/64). */
    static const uint8_t nat64_local[6] = {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01};
    static const uint8_t discard[8] = {0x01, 0x00};
    if (memcmp(b, nat64_local, 6) == 0 ||
        (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0) ||
        (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) ||
        memcmp(b, discard, 8) == 0)
        return 0;
    return !(IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_LINKLOCAL(a) ||
             IN6_IS_ADDR_SITELOCAL(a) || IN6_IS_ADDR_MULTICAST(a) ||
             (b[0] & 0xFE) == 0xFC); /* fc00::/7, unique local */
}

int net_url_check(const char *url, int allow_http, int allow_private, char *host, size_t host_len,
                  char *reason, size_t reason_len)
{
    int rc = GF_EINVAL;
    char *scheme = NULL, *h = NULL;
    CURLU *u = curl_url();
    if (u == NULL) {
        fprintf(stderr, "curl_url failed\n");
        abort(); /* only on memory exhaustion */
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK || h[0] == '\0') {
        snprintf(reason, reason_len, "not a URL with a host");
        goto done;
    }
    if (strcmp(scheme, "https") != 0 && !(allow_http && strcmp(scheme, "http") == 0)) {
        snprintf(reason, reason_len, "%s", allow_http ? "must be http or https" : "must be https");
        goto done;
    }
    /* An address literal: IPv6 comes in brackets (a zone id after '%' is refused by inet_pton). */
    size_t n = strlen(h);
    int v6 = h[0] == '[' && n > 2 && h[n - 1] == ']';
    if (v6) {
        memmove(h, h + 1, n - 2);
        h[n - 2] = '\0';
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    int literal = 0;
    if (v6 && inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        literal = 1;
    } else if (!v6 && inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        literal = 1;
    } else if (v6) {
        snprintf(reason, reason_len, "not a valid IPv6 address");
        goto done;
    }
    if (literal && !allow_private && !net_addr_is_public((struct sockaddr *)&ss)) {
        snprintf(reason, reason_len, "must not point at a loopback, private or link-local address");
        goto done;
    }
    if (host != NULL)
        snprintf(host, host_len, "%s", h);
    rc = 0;
done:
    curl_free(scheme);
    curl_free(h);
    curl_url_cleanup(u);
    return rc;
}
