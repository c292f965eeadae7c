-- kling_async: one account's concurrency quota shared on Redis.
--
-- One script, many operations (ARGV[1]); every operation runs atomically on the server, so no
-- slot is ever counted from a value read in an earlier round trip. KEYS[1] is the namespace's
-- epoch key "kling_async:{<namespace>}:epoch"; every other key shares its "{<namespace>}" hash
-- tag (one cluster slot). ARGV[2] is the epoch the caller knows, ARGV[3] its holder id.
--
-- Keys (P = "kling_async:{<namespace>}"):
--   P:epoch            id of this Redis state; missing after a restart without persistence
--   P:config           the Quota every process of the namespace must agree on (JSON)
--   P:rebuild_until    no grants before this time (seconds): live processes re-register first
--   P:ticket           arrival counter: the shared wait queue's order
--   P:holders          set of holder ids; P:alive:<holder> is its heartbeat (expires)
--   P:pools            set of pool names
--   P:pool:<pool>      hash: capacity, in_use, hidden, peak, mean, last_probe; overbooking:
--                      auto_slack, overbooked, ob_key / ob_excess (the overbooking grant), refuted
--   P:queue:<pool>     sorted set: waiting lease keys by ticket (oldest first)
--   P:waiters:<pool>   hash: lease key -> JSON {c cost, a auto, t since, h holder, r refused, k kind}
--   P:leases:<pool>    hash: lease key (external_task_id) -> JSON
--                      {c cost, h holder, s "g" granted | "c" created, k kind, a auto, t since, i task_id}
--   P:auto:<pool>      list: images of the last 50 ended auto series
--   P:clock            (tests only) a fixed time in seconds that replaces the server's TIME
--   P:granted:<holder> hash: lease key -> "cost" or "cost:overbooked" (grants not yet collected)
--   P:ch               pub/sub channel: "g" a grant was made, "r" slots were released

local LOOKAHEAD = 64          -- waiters a grant pass looks at, oldest first
local MIN_SERIES, MAX_SERIES = 2, 9
local PATIENCE_TASKS, FIRST_PATIENCE = 30, 300.0

local op, epoch, holder = ARGV[1], ARGV[2], ARGV[3]
local P = string.sub(KEYS[1], 1, #KEYS[1] - #":epoch")

local function now()
  -- P:clock, when set, replaces the server's clock (tests and simulations: a virtual time).
  local fixed = redis.call('GET', P .. ':clock')
  if fixed then return tonumber(fixed) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1e6
end

local function num(v, default)
  if v == false or v == nil or v == "" then return default end
  return tonumber(v)
end

local function pool_key(pool) return P .. ':pool:' .. pool end

local function auto_estimate(pool)
  -- The rounded-up mean of the last auto series' image counts, within 2-9; 9 before any ended.
  local seen = redis.call('LRANGE', P .. ':auto:' .. pool, 0, -1)
  if #seen == 0 then return MAX_SERIES end
  local sum = 0
  for _, v in ipairs(seen) do sum = sum + tonumber(v) end
  return math.max(MIN_SERIES, math.min(MAX_SERIES, math.ceil(sum / #seen)))
end

local function patience(pool)
  -- hol_patience from the shared config: seconds, "auto" (30 mean task durations, 300 s before
  -- any task ended) or null (never protect).
  local config = cjson.decode(redis.call('GET', P .. ':config'))
  local p = config['hol_patience']
  if p == cjson.null or p == nil then return nil end
  if p == 'auto' then
    local mean = num(redis.call('HGET', pool_key(pool), 'mean'), nil)
    if mean == nil then return FIRST_PATIENCE end
    return PATIENCE_TASKS * mean
  end
  return tonumber(p)
end

local function expected_frees(pool, mean, t)
  -- (expected end, slots) of the pool's created tasks: start + the mean duration, but no sooner
  -- than a tenth of it from now (decide.expected_frees), sorted by end, then slots.
  local ends = {}
  local m = mean or 0
  for _, v in ipairs(redis.call('HVALS', P .. ':leases:' .. pool)) do
    local l = cjson.decode(v)
    if l.s == 'c' then table.insert(ends, {math.max(l.t + m, t + 0.1 * m), l.c}) end
  end
  table.sort(ends, function(x, y) return x[1] < y[1] or (x[1] == y[1] and x[2] < y[2]) end)
  return ends
end

local function shadow(ends, mean, free, head, t)
  -- For BACKFILL: whether a task started now is expected to end before the head can start
  -- (its shadow time), and the slots spare beside the head then (decide._shadow).
  local spare = free - head
  if mean == nil then return false, spare end
  local available = free
  for _, e in ipairs(ends) do
    available = available + e[2]
    if available >= head then return t + mean <= e[1], available - head end
  end
  return false, spare
end

local function grant_pass(pool, t)
  -- The policy, rule for rule as kling_async/_quota/_decide.py's decide() (same rule names,
  -- same order; tests/test_quota_equivalence.py replays random events through both).
  if t < num(redis.call('GET', P .. ':rebuild_until'), 0) then return 0 end
  local pk = pool_key(pool)
  -- LOOKAHEAD
  local ids = redis.call('ZRANGE', P .. ':queue:' .. pool, 0, LOOKAHEAD - 1)
  if #ids == 0 then return 0 end
  local f = redis.call('HMGET', pk, 'capacity', 'in_use', 'hidden', 'peak', 'mean', 'last_probe',
    'auto_slack', 'overbooked', 'ob_key', 'refuted')
  local cap, in_use, hidden, peak = num(f[1], 0), num(f[2], 0), num(f[3], 0), num(f[4], 0)
  local mean, last_probe = num(f[5], nil), num(f[6], -math.huge)
  local auto_slack, overbooked = num(f[7], 0), num(f[8], 0)
  local ob_key, refuted = f[9] or '', num(f[10], 0)
  local raw = redis.call('HMGET', P .. ':waiters:' .. pool, unpack(ids))
  local ws = {}
  for i, v in ipairs(raw) do
    if v then
      local w = cjson.decode(v)
      w.key = ids[i]
      table.insert(ws, w)
    else
      redis.call('ZREM', P .. ':queue:' .. pool, ids[i])
    end
  end
  if #ws == 0 then return 0 end
  -- PROBE
  local probe = math.max(0.01, mean or 1.0)
  if hidden > 0 and t - ws[1].t >= probe and t - last_probe >= probe then
    hidden = hidden - 1
    last_probe = t
  end
  local wait = patience(pool)
  local frees = nil
  local estimate = nil
  local function price(w)  -- PRICE
    if w.a == 1 and wait ~= nil and t - w.t >= wait then
      return math.max(w.c, math.min(w.r + 1, MAX_SERIES, cap))
    end
    return math.min(w.c, cap)
  end
  local granted = 0
  while #ws > 0 do
    local free = cap - in_use - hidden + overbooked
    local head_price = price(ws[1])
    -- PROTECT
    local protected = wait ~= nil and t - ws[1].t >= wait and head_price <= cap - hidden
    local chosen, chosen_price, excess = nil, 0, 0
    if head_price <= free then  -- HEAD
      chosen, chosen_price = 1, head_price
    elseif protected then  -- BACKFILL
      if frees == nil then frees = expected_frees(pool, mean, t) end
      local ends_in_time, spare = shadow(frees, mean, free, head_price, t)
      for i = 2, #ws do
        local c = price(ws[i])
        if c <= free and (ends_in_time or c <= math.min(spare, free)) and c > chosen_price then
          chosen, chosen_price = i, c
        end
      end
    else  -- BEST_FIT
      for i = 2, #ws do
        local c = price(ws[i])
        if c <= free and c > chosen_price then chosen, chosen_price = i, c end
      end
    end
    if chosen == nil then  -- OVERBOOK
      local slack = auto_slack - overbooked
      if ob_key ~= '' or refuted == 1 or hidden > 0 or slack <= 0 then break end
      local last = #ws
      if protected then last = 1 end
      for i = 1, last do
        local c = price(ws[i])
        if c <= free + slack and (chosen == nil or c < chosen_price) then
          chosen, chosen_price = i, c
        end
      end
      if chosen == nil then break end
      excess = chosen_price - math.max(free, 0)
    end
    local w = table.remove(ws, chosen)
    local cost = chosen_price
    if excess > 0 then
      overbooked = overbooked + excess
      ob_key = w.key
      redis.call('HSET', pk, 'ob_excess', excess)
    elseif w.a == 1 then  -- TAKE
      if estimate == nil then estimate = auto_estimate(pool) end
      cost = math.max(cost, math.min(free, estimate, cap))
    end
    in_use = in_use + cost
    if in_use - overbooked > peak then peak = in_use - overbooked end
    redis.call('ZREM', P .. ':queue:' .. pool, w.key)
    redis.call('HDEL', P .. ':waiters:' .. pool, w.key)
    redis.call('HSET', P .. ':leases:' .. pool, w.key,
      cjson.encode({c = cost, h = w.h, s = 'g', k = w.k, a = w.a, t = t, i = ''}))
    local grant = tostring(cost)
    if excess > 0 then grant = grant .. ':overbooked' end
    redis.call('HSET', P .. ':granted:' .. w.h, w.key, grant)
    granted = granted + 1
  end
  local probed = last_probe
  if probed == -math.huge then probed = '' end
  redis.call('HSET', pk, 'in_use', in_use, 'hidden', hidden, 'peak', peak,
    'last_probe', probed, 'overbooked', overbooked, 'ob_key', ob_key)
  if granted > 0 then redis.call('PUBLISH', P .. ':ch', 'g') end
  return granted
end

local function figures(pool)
  -- {pool, capacity, in_use, hidden, waiting, mine, peak}: mine = slots held by this holder.
  local pk = pool_key(pool)
  local f = redis.call('HMGET', pk, 'capacity', 'in_use', 'hidden', 'peak')
  local mine = 0
  local leases = redis.call('HVALS', P .. ':leases:' .. pool)
  for _, v in ipairs(leases) do
    local l = cjson.decode(v)
    if l.h == holder then mine = mine + l.c end
  end
  return {pool, num(f[1], 0), num(f[2], 0), num(f[3], 0),
          redis.call('ZCARD', P .. ':queue:' .. pool), mine, num(f[4], 0)}
end

local function collect(pools)
  -- This holder's grants (flat: key, cost, ...) and the figures of ``pools``.
  local mailbox = P .. ':granted:' .. holder
  local grants = redis.call('HGETALL', mailbox)
  redis.call('DEL', mailbox)
  local figs = {}
  for _, pool in ipairs(pools) do table.insert(figs, figures(pool)) end
  return {'ok', grants, figs}
end

local function release(pool, key, t, images, seconds)
  -- Give back the slots of lease ``key`` (idempotent: a lease is released once, by whichever
  -- process learns first that its task ended). Returns the slots given back.
  local lk = P .. ':leases:' .. pool
  local v = redis.call('HGET', lk, key)
  if not v then return 0 end
  local l = cjson.decode(v)
  redis.call('HDEL', lk, key)
  redis.call('HDEL', P .. ':granted:' .. l.h, key)
  local pk = pool_key(pool)
  local f = redis.call('HMGET', pk, 'in_use', 'hidden', 'mean', 'auto_slack', 'overbooked',
    'ob_key', 'ob_excess')
  local in_use, hidden, mean = num(f[1], 0) - l.c, num(f[2], 0), num(f[3], nil)
  local auto_slack, overbooked = num(f[4], 0), num(f[5], 0)
  if in_use < 0 then in_use = 0 end
  if f[6] == key then  -- the overbooking grant gave up before its create was answered
    overbooked = math.max(0, overbooked - num(f[7], 0))
    redis.call('HSET', pk, 'ob_key', '')
  end
  if seconds >= 0 then
    if mean == nil then mean = seconds else mean = 0.9 * mean + 0.1 * seconds end
    redis.call('HSET', pk, 'mean', mean)
  end
  if l.a == 1 and l.s == 'c' then
    auto_slack = math.max(0, auto_slack - (l.c - MIN_SERIES))
    if images > 0 then
      redis.call('LPUSH', P .. ':auto:' .. pool, images)
      redis.call('LTRIM', P .. ':auto:' .. pool, 0, 49)
      if images > l.c and hidden > 0 then
        -- It held more than it was counted for: those slots were counted as hidden.
        hidden = math.max(0, hidden - (images - l.c))
      elseif images < l.c then
        -- It held less: slots overbooked on its reservation are gone with it.
        overbooked = math.max(0, overbooked - (l.c - images))
      end
    end
    overbooked = math.min(overbooked, auto_slack)
  end
  -- A task ended: overbooking may succeed again.
  redis.call('HSET', pk, 'in_use', in_use, 'hidden', hidden, 'auto_slack', auto_slack,
    'overbooked', overbooked, 'refuted', 0)
  redis.call('PUBLISH', P .. ':ch', 'r')
  grant_pass(pool, t)
  return l.c
end

local function register_pool(pool, cap)
  -- A pool seen for the first time: its capacity, and its name (for reconciliation).
  if not redis.call('HGET', pool_key(pool), 'capacity') then
    redis.call('HSET', pool_key(pool), 'capacity', cap)
    redis.call('SADD', P .. ':pools', pool)
  end
end

local function count_held(pool, cost)
  -- Slots of a task already running, counted without a grant: in use, and the peak.
  local pk = pool_key(pool)
  local in_use = num(redis.call('HGET', pk, 'in_use'), 0) + cost
  redis.call('HSET', pk, 'in_use', in_use,
    'peak', math.max(num(redis.call('HGET', pk, 'peak'), 0), in_use))
end

-- -- operations -------------------------------------------------------------------------------

if op == 'init' or op == 'rejoin' then
  -- ARGV[4] config JSON, ARGV[5] a new epoch id, ARGV[6] grace seconds before grants.
  local config, candidate, grace = ARGV[4], ARGV[5], tonumber(ARGV[6])
  local current = redis.call('GET', KEYS[1])
  local existing = redis.call('GET', P .. ':config')
  if existing and existing ~= config and current then
    return {'conflict', existing}
  end
  if not current then
    -- A new (or restarted, empty) Redis: give live processes time to re-register what they
    -- hold before anything is admitted.
    redis.call('SET', KEYS[1], candidate)
    redis.call('SET', P .. ':config', config)
    redis.call('SET', P .. ':rebuild_until', now() + grace)
    current = candidate
  end
  return {'ok', current}
end

if redis.call('GET', KEYS[1]) ~= epoch then return {'epoch'} end
local t = now()

if op == 'heartbeat' then
  -- ARGV[4] ttl ms.
  redis.call('SET', P .. ':alive:' .. holder, '1', 'PX', ARGV[4])
  redis.call('SADD', P .. ':holders', holder)
  return {'ok'}

elseif op == 'enqueue' then
  -- ARGV[4] pool, [5] capacity, [6] key, [7] cost, [8] auto 0/1, [9] kind, [10] ticket (0: new),
  -- [11] since (0: now), [12] slots a create of it was refused with.
  local pool, cap, key = ARGV[4], tonumber(ARGV[5]), ARGV[6]
  local pk = pool_key(pool)
  local known = num(redis.call('HGET', pk, 'capacity'), nil)
  if known ~= nil and known ~= cap then return {'conflict', tostring(known)} end
  if known == nil then register_pool(pool, cap) end
  local ticket, since = tonumber(ARGV[10]), tonumber(ARGV[11])
  if ticket == 0 then
    ticket = redis.call('INCR', P .. ':ticket')
  elseif ticket > num(redis.call('GET', P .. ':ticket'), 0) then
    redis.call('SET', P .. ':ticket', ticket)  -- re-queued after a restart of Redis
  end
  if since == 0 then since = t end
  local stale = redis.call('HGET', P .. ':leases:' .. pool, key)
  if stale then
    -- The lease of a dead holder under the same key (a line taken over from a killed process,
    -- which looked the task up and found none): its slots go back, and this holder queues.
    local h = cjson.decode(stale).h
    if h ~= holder and redis.call('EXISTS', P .. ':alive:' .. h) == 0 then
      release(pool, key, t, 0, -1)
    end
  end
  if redis.call('HEXISTS', P .. ':leases:' .. pool, key) == 0 then
    -- (Already granted when a retried enqueue finds its lease: only collect.)
    redis.call('ZADD', P .. ':queue:' .. pool, ticket, key)
    redis.call('HSET', P .. ':waiters:' .. pool, key, cjson.encode({
      c = tonumber(ARGV[7]), a = tonumber(ARGV[8]), k = ARGV[9], t = since, h = holder,
      r = tonumber(ARGV[12])}))
    grant_pass(pool, t)
  end
  local result = collect({pool})
  table.insert(result, ticket)
  table.insert(result, tostring(since))
  return result

elseif op == 'pass' then
  -- ARGV[4..]: pools this holder waits on or holds slots in.
  local pools = {}
  for i = 4, #ARGV do
    table.insert(pools, ARGV[i])
    grant_pass(ARGV[i], t)
  end
  return collect(pools)

elseif op == 'cancel' then
  -- ARGV[4] pool, [5] key: a waiter gave up (cancelled); slots granted to it go back.
  local pool, key = ARGV[4], ARGV[5]
  redis.call('ZREM', P .. ':queue:' .. pool, key)
  redis.call('HDEL', P .. ':waiters:' .. pool, key)
  local v = redis.call('HGET', P .. ':leases:' .. pool, key)
  if v and cjson.decode(v).s == 'g' then release(pool, key, t, 0, -1) end
  grant_pass(pool, t)
  return collect({pool})

elseif op == 'created' then
  -- ARGV[4] pool, [5] key, [6] task_id, [7] cost, [8] auto, [9] kind. A missing lease (Redis
  -- restarted since the grant) is counted afresh.
  local pool, key = ARGV[4], ARGV[5]
  local lk = P .. ':leases:' .. pool
  local v = redis.call('HGET', lk, key)
  local l
  if v then
    l = cjson.decode(v)
  else
    l = {c = tonumber(ARGV[7]), a = tonumber(ARGV[8]), k = ARGV[9], t = t}
    count_held(pool, l.c)
  end
  l.s, l.h, l.i, l.t = 'c', holder, ARGV[6], t  -- its task started now (expected frees)
  redis.call('HSET', lk, key, cjson.encode(l))
  local pk = pool_key(pool)
  if l.a == 1 then redis.call('HINCRBY', pk, 'auto_slack', l.c - MIN_SERIES) end
  local f = redis.call('HMGET', pk, 'hidden', 'ob_key')
  if f[2] == key then
    redis.call('HSET', pk, 'ob_key', '')  -- the overbooking proved right: those slots were free
  elseif num(f[1], 0) > 0 then
    -- Additive increase: a successful create gives back one slot proven held elsewhere.
    redis.call('HSET', pk, 'hidden', num(f[1], 0) - 1)
  end
  grant_pass(pool, t)
  return collect({pool})

elseif op == 'refused' then
  -- ARGV[4] pool, [5] key, [6] proves hidden (0/1). A 1303 at the lease's cost: its slots
  -- go back without a release signal (no task ended), and the server holds at least
  -- capacity - cost + 1 slots besides it: count the difference as hidden.
  local pool, key = ARGV[4], ARGV[5]
  local lk = P .. ':leases:' .. pool
  local v = redis.call('HGET', lk, key)
  if not v then return {'ok'} end
  local l = cjson.decode(v)
  redis.call('HDEL', lk, key)
  local pk = pool_key(pool)
  local f = redis.call('HMGET', pk, 'capacity', 'in_use', 'hidden', 'overbooked', 'ob_key',
    'ob_excess')
  local cap, in_use, hidden = num(f[1], 0), math.max(0, num(f[2], 0) - l.c), num(f[3], 0)
  local overbooked = num(f[4], 0)
  if f[5] == key then
    -- The overbooking create was refused: the slots it assumed free are held; no create
    -- overbooks again until a task ends.
    overbooked = math.max(0, overbooked - num(f[6], 0))
    redis.call('HSET', pk, 'ob_key', '', 'refuted', 1)
  elseif ARGV[6] == '1' then
    local deficit = (cap - l.c + 1) - (in_use + hidden - overbooked)
    if deficit > 0 then
      local taken = math.min(deficit, overbooked)
      overbooked = overbooked - taken
      -- Keep room for a cost-1 probe so the pool can never lock itself up.
      hidden = math.min(hidden + deficit - taken, math.max(hidden, cap - 1))
    end
  end
  redis.call('HSET', pk, 'in_use', in_use, 'hidden', hidden, 'overbooked', overbooked)
  grant_pass(pool, t)
  return collect({pool})

elseif op == 'release' then
  -- ARGV[4] pool, [5] key, [6] images (0: unknown), [7] seconds held (-1: do not learn).
  release(ARGV[4], ARGV[5], t, tonumber(ARGV[6]), tonumber(ARGV[7]))
  return collect({ARGV[4]})

elseif op == 'occupy' then
  -- ARGV[4] pool, [5] capacity, [6] key, [7] cost (0: as priced now), [8] auto, [9] kind,
  -- [10] task_id. A task already running (re-attached from a journal, or re-registered after a
  -- restart of Redis): if its lease exists it now belongs to this holder; else it is counted.
  local pool, key = ARGV[4], ARGV[6]
  local pk = pool_key(pool)
  register_pool(pool, tonumber(ARGV[5]))
  local lk = P .. ':leases:' .. pool
  local v = redis.call('HGET', lk, key)
  local l
  if v then
    l = cjson.decode(v)
  else
    local cost = tonumber(ARGV[7])
    if cost == 0 then cost = auto_estimate(pool) end
    l = {c = cost, a = tonumber(ARGV[8]), k = ARGV[9], t = t}
    count_held(pool, cost)
    if l.a == 1 then redis.call('HINCRBY', pk, 'auto_slack', cost - MIN_SERIES) end
  end
  l.s, l.h = 'c', holder
  if ARGV[10] ~= '' then l.i = ARGV[10] end
  redis.call('HSET', lk, key, cjson.encode(l))
  return {'ok', l.c}

elseif op == 'adopt' then
  -- ARGV[4] pool, [5] capacity, [6] key, [7] task_id, [8] kind. A task the server lists as
  -- running that no lease knows (its process died while Redis lost its state): count it, at
  -- one slot (its cost is not listed), under a holder that never heartbeats, so the dead
  -- holders' reconciliation frees it once the server says it ended.
  local pool, key, task_id = ARGV[4], ARGV[6], ARGV[7]
  local lk = P .. ':leases:' .. pool
  register_pool(pool, tonumber(ARGV[5]))
  if redis.call('HEXISTS', lk, key) == 1 then return {'ok', 0} end
  for _, v in ipairs(redis.call('HVALS', lk)) do
    if cjson.decode(v).i == task_id then return {'ok', 0} end
  end
  local orphan = 'server-list'
  redis.call('SADD', P .. ':holders', orphan)
  redis.call('HSET', lk, key, cjson.encode({c = 1, h = orphan, s = 'c', k = ARGV[8], a = 0,
    t = t, i = task_id}))
  count_held(pool, 1)
  return {'ok', 1}

elseif op == 'orphans' then
  -- Leases whose holder's heartbeat expired (flat: pool, key, kind, task_id, state); their
  -- waiters leave the queue. Holders with nothing left are forgotten.
  local dead = {}
  for _, h in ipairs(redis.call('SMEMBERS', P .. ':holders')) do
    if redis.call('EXISTS', P .. ':alive:' .. h) == 0 then dead[h] = true end
  end
  local out, busy = {}, {}
  for _, pool in ipairs(redis.call('SMEMBERS', P .. ':pools')) do
    local wk = P .. ':waiters:' .. pool
    local ws = redis.call('HGETALL', wk)
    for i = 1, #ws, 2 do
      if dead[cjson.decode(ws[i + 1]).h] then
        redis.call('HDEL', wk, ws[i])
        redis.call('ZREM', P .. ':queue:' .. pool, ws[i])
      end
    end
    local ls = redis.call('HGETALL', P .. ':leases:' .. pool)
    for i = 1, #ls, 2 do
      local l = cjson.decode(ls[i + 1])
      if dead[l.h] then
        busy[l.h] = true
        for _, x in ipairs({pool, ls[i], l.k, l.i or '', l.s}) do table.insert(out, x) end
      end
    end
  end
  for h, _ in pairs(dead) do
    if not busy[h] then
      redis.call('SREM', P .. ':holders', h)
      redis.call('DEL', P .. ':granted:' .. h)
    end
  end
  return {'ok', out}
end

return redis.error_reply('kling_async quota script: unknown operation ' .. tostring(op))
