/*
 * cluster_lua.h -- the Lua scripts the shared ledger runs in Redis.
 *
 * Each runs atomically in the server, so no two nodes ever see the same
 * remaining cap.  Keys of one migration share the hash tag {name}.
 *
 * A day's hash (KEYS[1] = warmup:{name}:day:DATE) holds cap (the smallest
 * cap any node stated), granted (units leased out, used or not) and one
 * field n:NODE per node (what that node holds or used).  A node states its
 * own claim (what it used today plus the lease it holds) with every call:
 * the field only ever grows to it, so a Redis that lost its data learns
 * every live node's units back before it grants anything new (the hold,
 * a few seconds after the day's hash is found missing while a node still
 * claims units).  A node that crashed never returns its lease: waste, not
 * excess.
 */
#ifndef WU_CLUSTER_LUA_H
#define WU_CLUSTER_LUA_H

/* The claim part shared by LEASE and SYNC.  ARGV: cap node claim grace. */
#define CLUSTER_LUA_CLAIM                                                                          \
	"local K = KEYS[1]\n"                                                                      \
	"local cap = tonumber(ARGV[1])\n"                                                          \
	"local me = 'n:' .. ARGV[2]\n"                                                             \
	"local claim = tonumber(ARGV[3])\n"                                                        \
	"local now = tonumber(redis.call('TIME')[1])\n"                                            \
	"if redis.call('EXISTS', K) == 0 and claim > 0 then\n"                                     \
	"  redis.call('HSET', K, 'hold', now + tonumber(ARGV[4]))\n"                               \
	"end\n"                                                                                    \
	"local c = tonumber(redis.call('HGET', K, 'cap'))\n"                                       \
	"if not c or cap < c then c = cap; redis.call('HSET', K, 'cap', c) end\n"                  \
	"local mine = tonumber(redis.call('HGET', K, me) or '0')\n"                                \
	"if claim > mine then\n"                                                                   \
	"  redis.call('HINCRBY', K, 'granted', claim - mine)\n"                                    \
	"  redis.call('HSET', K, me, claim)\n"                                                     \
	"end\n"                                                                                    \
	"local granted = tonumber(redis.call('HGET', K, 'granted') or '0')\n"                      \
	"local left = c - granted\n"                                                               \
	"if left < 0 then left = 0 end\n"                                                          \
	"local hold = tonumber(redis.call('HGET', K, 'hold') or '0')\n"                            \
	"local held = 0\n"                                                                         \
	"if now < hold then held = 1 end\n"                                                        \
	"redis.call('EXPIRE', K, 259200)\n"

/* A lease.  ARGV: cap node claim grace want.  Returns {granted, left,
 * held}: at most want, at most half of what is left (rounded up) so the
 * last units spread over the nodes that still send. */
#define CLUSTER_LUA_LEASE                                                                          \
	CLUSTER_LUA_CLAIM                                                                          \
	"local want = tonumber(ARGV[5])\n"                                                         \
	"local n = 0\n"                                                                            \
	"if held == 0 and want > 0 and left > 0 then\n"                                            \
	"  n = want\n"                                                                             \
	"  local half = math.ceil(left / 2)\n"                                                     \
	"  if n > half then n = half end\n"                                                        \
	"  redis.call('HINCRBY', K, 'granted', n)\n"                                               \
	"  redis.call('HINCRBY', K, me, n)\n"                                                      \
	"  left = left - n\n"                                                                      \
	"end\n"                                                                                    \
	"return {n, left, held}\n"

/* A lease given back.  KEYS[1] the day.  ARGV: node n.  Returns what went
 * back (never more than the node holds). */
#define CLUSTER_LUA_RETURN                                                                         \
	"local K = KEYS[1]\n"                                                                      \
	"local me = 'n:' .. ARGV[1]\n"                                                             \
	"local n = tonumber(ARGV[2])\n"                                                            \
	"if redis.call('EXISTS', K) == 0 then return 0 end\n"                                      \
	"local mine = tonumber(redis.call('HGET', K, me) or '0')\n"                                \
	"if n > mine then n = mine end\n"                                                          \
	"if n > 0 then\n"                                                                          \
	"  redis.call('HINCRBY', K, me, -n)\n"                                                     \
	"  redis.call('HINCRBY', K, 'granted', -n)\n"                                              \
	"end\n"                                                                                    \
	"return n\n"

/* The periodic call: the claim, this node's numbers for the cluster view,
 * the shared pause, and every live node's numbers back.
 * KEYS: day, this node's hash, the node set, the pause hash, the node
 * hash prefix, the day's pacing bucket, the day's ISP hash.  ARGV: cap
 * node claim grace date lease sent ttl gate rate burst back want, then
 * the number of ISPs and for each: name rate burst share back want claim.
 * Returns {left, granted, cap, held, pause_seq, paused, pause_kind,
 * pause_date, pause_by, tokens, tokens_left, {{tokens, tokens_left,
 * share_left} per ISP}, then node, date, lease, sent, at, gate per node}
 * (gate: the node's own gate counts, cluster_gate.c).
 *
 * The pacing bucket (rate 0: none) fills at rate tokens a second up to
 * burst, from full at its first use of the day, by the server's clock; the
 * node's unused tokens (back) go in first, then it gets up to want.  An
 * ISP's bucket is the same (its rate 0: none, tokens_left -1; field
 * NAME:rate the rate it last filled at, a cut's factor applied); its tokens
 * are also units of its share (-1: none, share_left -1), counted in sum as
 * the cap is: field NAME:got the sum, NAME:n:NODE a node's part, which
 * only grows to the node's claim (sent today + tokens held). */
#define CLUSTER_LUA_SYNC                                                                           \
	CLUSTER_LUA_CLAIM                                                                          \
	"local ttl = tonumber(ARGV[8])\n"                                                          \
	"redis.call('HSET', KEYS[2], 'date', ARGV[5], 'lease', ARGV[6], 'sent', ARGV[7],"          \
	" 'at', now, 'gate', ARGV[9])\n"                                                           \
	"redis.call('EXPIRE', KEYS[2], ttl)\n"                                                     \
	"redis.call('ZADD', KEYS[3], now, ARGV[2])\n"                                              \
	"redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - ttl)\n"                             \
	"local p = redis.call('HMGET', KEYS[4], 'seq', 'paused', 'kind', 'date', 'by')\n"          \
	"local tg, tleft = 0, 0\n"                                                                 \
	"local rate = tonumber(ARGV[10])\n"                                                        \
	"if rate > 0 then\n"                                                                       \
	"  local burst = tonumber(ARGV[11])\n"                                                     \
	"  local tm = redis.call('TIME')\n"                                                        \
	"  local tnow = tonumber(tm[1]) + tonumber(tm[2]) / 1000000\n"                             \
	"  local tok = tonumber(redis.call('HGET', KEYS[6], 'tokens') or '-1')\n"                  \
	"  local last = tonumber(redis.call('HGET', KEYS[6], 't') or '0')\n"                       \
	"  if tok < 0 then tok = burst; last = tnow end\n"                                         \
	"  if tnow > last then tok = tok + (tnow - last) * rate end\n"                             \
	"  tok = tok + tonumber(ARGV[12])\n"                                                       \
	"  if tok > burst then tok = burst end\n"                                                  \
	"  tg = math.floor(math.min(tonumber(ARGV[13]), tok))\n"                                   \
	"  if tg < 0 then tg = 0 end\n"                                                            \
	"  tok = tok - tg\n"                                                                       \
	"  tleft = math.floor(tok)\n"                                                              \
	"  redis.call('HSET', KEYS[6], 'tokens', tostring(tok), 't', tostring(tnow))\n"            \
	"  redis.call('EXPIRE', KEYS[6], 259200)\n"                                                \
	"end\n"                                                                                    \
	"local isps = {}\n"                                                                        \
	"local m = tonumber(ARGV[14] or '0')\n"                                                    \
	"if m > 0 then\n"                                                                          \
	"  local tm = redis.call('TIME')\n"                                                        \
	"  local tnow = tonumber(tm[1]) + tonumber(tm[2]) / 1000000\n"                             \
	"  local IK = KEYS[7]\n"                                                                   \
	"  for j = 0, m - 1 do\n"                                                                  \
	"    local b = 15 + j * 7\n"                                                               \
	"    local name = ARGV[b]\n"                                                               \
	"    local rate, burst = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])\n"                   \
	"    local share, back = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])\n"                   \
	"    local g, claim = tonumber(ARGV[b + 5]), tonumber(ARGV[b + 6])\n"                      \
	"    local tl, sl = -1, -1\n"                                                              \
	"    local tok\n"                                                                          \
	"    if rate > 0 then\n"                                                                   \
	"      tok = tonumber(redis.call('HGET', IK, name .. ':tok') or '-1')\n"                   \
	"      local last = tonumber(redis.call('HGET', IK, name .. ':t') or '0')\n"               \
	"      if tok < 0 then tok = burst; last = tnow end\n"                                     \
	"      if tnow > last then tok = tok + (tnow - last) * rate end\n"                         \
	"      tok = tok + back\n"                                                                 \
	"      if tok > burst then tok = burst end\n"                                              \
	"      if g > tok then g = math.floor(tok) end\n"                                          \
	"    end\n"                                                                                \
	"    if share >= 0 then\n"                                                                 \
	"      local mk = name .. ':n:' .. ARGV[2]\n"                                              \
	"      local got = tonumber(redis.call('HGET', IK, name .. ':got') or '0')\n"              \
	"      local mine = tonumber(redis.call('HGET', IK, mk) or '0')\n"                         \
	"      if claim > mine then got = got + claim - mine; mine = claim end\n"                  \
	"      if back > mine then back = mine end\n"                                              \
	"      got = got - back; mine = mine - back\n"                                             \
	"      local room = share - got\n"                                                         \
	"      if room < 0 then room = 0 end\n"                                                    \
	"      if g > room then g = room end\n"                                                    \
	"      if g < 0 then g = 0 end\n"                                                          \
	"      got = got + g; mine = mine + g\n"                                                   \
	"      sl = room - g\n"                                                                    \
	"      redis.call('HSET', IK, name .. ':got', got, mk, mine)\n"                            \
	"    end\n"                                                                                \
	"    if g < 0 then g = 0 end\n"                                                            \
	"    if rate > 0 then\n"                                                                   \
	"      tok = tok - g\n"                                                                    \
	"      tl = math.floor(tok)\n"                                                             \
	"      redis.call('HSET', IK, name .. ':tok', tostring(tok), name .. ':t', tostring(tnow),"   \
	"                 name .. ':rate', ARGV[b + 1])\n"                                         \
	"    end\n"                                                                                \
	"    table.insert(isps, {g, tl, sl})\n"                                                    \
	"  end\n"                                                                                  \
	"  redis.call('EXPIRE', IK, 259200)\n"                                                     \
	"end\n"                                                                                    \
	"local out = {left, granted, c, held, tonumber(p[1] or '0'), tonumber(p[2] or '0'),"       \
	" p[3] or '', tonumber(p[4] or '0'), p[5] or '', tg, tleft, isps}\n"                       \
	"for _, node in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do\n"                         \
	"  local h = redis.call('HMGET', KEYS[5] .. node, 'date', 'lease', 'sent', 'at', 'gate')\n" \
	"  if h[1] then\n"                                                                         \
	"    table.insert(out, node)\n"                                                            \
	"    table.insert(out, tonumber(h[1]))\n"                                                  \
	"    table.insert(out, tonumber(h[2]))\n"                                                  \
	"    table.insert(out, tonumber(h[3]))\n"                                                  \
	"    table.insert(out, tonumber(h[4]))\n"                                                  \
	"    table.insert(out, h[5] or '')\n"                                                      \
	"  end\n"                                                                                  \
	"end\n"                                                                                    \
	"return out\n"

/* A pause, a resume or a gate halt for every node.  KEYS[1] the pause
 * hash.  ARGV: paused kind date by.  Returns the new sequence number. */
#define CLUSTER_LUA_PAUSE                                                                          \
	"local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)\n"                                   \
	"redis.call('HSET', KEYS[1], 'paused', ARGV[1], 'kind', ARGV[2], 'date', ARGV[3],"         \
	" 'by', ARGV[4])\n"                                                                        \
	"redis.call('EXPIRE', KEYS[1], 2592000)\n"                                                 \
	"return seq\n"

#endif
