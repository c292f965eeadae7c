-- kling_async RedisCampaign: record a line's outcome and acknowledge it, atomically.
-- KEYS: stream, results, counts, dead
-- ARGV: group, entry id, line number, outcome JSON, status, units ("" when none)
-- A line recorded twice (two workers followed the same task) is counted once: the earlier
-- record's status and units are taken back before the new one is counted.
local prev = redis.call('HGET', KEYS[2], ARGV[3])
if prev then
  local ok, p = pcall(cjson.decode, prev)
  if ok and type(p) == 'table' then
    redis.call('HINCRBY', KEYS[3], 'status:' .. tostring(p['status']), -1)
    if type(p['units']) == 'string' and p['units'] ~= '' then
      redis.call('HINCRBYFLOAT', KEYS[3], 'units', '-' .. p['units'])
    end
  end
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('HINCRBY', KEYS[3], 'status:' .. ARGV[5], 1)
if ARGV[6] ~= '' then
  redis.call('HINCRBYFLOAT', KEYS[3], 'units', ARGV[6])
end
if ARGV[5] == 'dead_letter' and not prev then
  redis.call('RPUSH', KEYS[4], ARGV[3])
end
if ARGV[2] ~= '' then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[1], ARGV[2])
end
return prev and 1 or 0
