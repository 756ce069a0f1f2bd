/**
 * @module The Lua scripts of the Redis job queue, each run atomically on the server: `take`
 * (promote due retries, take over expired deliveries, read a new entry; stat before routine)
 * and `extend` (reset a delivery's idle time only while its consumer still owns it).
 */
import type { RedisLink } from "../platform/redis_link.ts";

/**
 * KEYS: stat stream, routine stream, delayed zset, dead stream.
 * ARGV: group, consumer, now (ms), visibility (ms), max attempts, now (ISO), timeout reason,
 * dead-letter cap.
 * Returns {stream, id, job, attempt, expired} or {false, stat last id, routine last id, next due
 * (ms), expired}, where expired lists the job JSON of deliveries dead-lettered here because their
 * last allowed attempt timed out (the caller marks their Tasks failed).
 * A delayed member is "<priority> <attempt> <job JSON>".
 */
const TAKE = `
local group, consumer = ARGV[1], ARGV[2]
local now, min_idle, max_attempts = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local streams = { stat = KEYS[1], routine = KEYS[2] }
local expired = {}

for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)) do
  local priority, attempt, job = string.match(member, '^(%a+) (%d+) (.*)$')
  redis.call('XADD', streams[priority] or KEYS[2], '*', 'job', job, 'attempt', attempt)
  redis.call('ZREM', KEYS[3], member)
end

local function fields_of(flat)
  local f = {}
  for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
  return f
end

local function take_over(key)
  local cursor = '0-0'
  for _ = 1, 100 do
    local claimed = redis.call('XAUTOCLAIM', key, group, consumer, min_idle, cursor, 'COUNT', 1)
    cursor = claimed[1]
    local entry = claimed[2][1]
    if entry and entry[2] then
      local id, f = entry[1], fields_of(entry[2])
      local info = redis.call('XPENDING', key, group, id, id, 1)[1]
      local attempt = tonumber(f.attempt) + (info and info[4] or 1) - 1
      if attempt <= max_attempts then return { key, id, f.job, attempt } end
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], '*', 'job', f.job, 'error', ARGV[7],
        'attempts', attempt - 1, 'failedAt', ARGV[6])
      table.insert(expired, f.job)
      redis.call('XACK', key, group, id)
      redis.call('XDEL', key, id)
    elseif cursor == '0-0' then
      return nil
    end
  end
  return nil
end

local function read_new(key)
  local reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1, 'STREAMS', key, '>')
  local entry = reply and reply[1][2][1]
  if not entry then return nil end
  local f = fields_of(entry[2])
  return { key, entry[1], f.job, tonumber(f.attempt) }
end

for _, key in ipairs({ KEYS[1], KEYS[2] }) do
  local found = take_over(key) or read_new(key)
  if found then
    table.insert(found, expired)
    return found
  end
end

local function last_id(key)
  local info = redis.call('XINFO', 'STREAM', key)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return info[i + 1] end
  end
  return '0-0'
end
local due = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')[2] or ''
return { false, last_id(KEYS[1]), last_id(KEYS[2]), due, expired }
`;

/** KEYS: stream. ARGV: group, consumer, id. Returns 1 when extended, 0 when no longer owned. */
const EXTEND = `
local info = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)[1]
if not info or info[2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
`;

export interface Script {
  run<T>(link: RedisLink, keys: string[], args: (string | number)[]): Promise<T>;
}

/** A script run by its SHA-1 (EVALSHA), loaded with EVAL the first time a server lacks it. */
export async function createScript(source: string): Promise<Script> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(source));
  const sha = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  return {
    async run<T>(link: RedisLink, keys: string[], args: (string | number)[]): Promise<T> {
      const rest = [String(keys.length), ...keys, ...args.map(String)];
      try {
        return await link.sendCommand<T>(["EVALSHA", sha, ...rest]);
      } catch (error) {
        if (!String((error as Error)?.message).startsWith("NOSCRIPT")) throw error;
        return await link.sendCommand<T>(["EVAL", source, ...rest]);
      }
    },
  };
}

export interface QueueScripts {
  take: Script;
  extend: Script;
}

export async function createQueueScripts(): Promise<QueueScripts> {
  return { take: await createScript(TAKE), extend: await createScript(EXTEND) };
}
