# twins: source
# twins: rename _aindex=_index _aremove_user=_remove_user
"""RedisStore's scripts on a Redis Cluster (async source; ``_redis_cluster_sync`` is generated).

On one server each store operation is one Lua script over the session hash and the user's
index set. On a cluster a script may only touch keys of one hash slot, and a session (keyed
by its id, the only thing the cookie carries) and its user's index (keyed by the user) live in
different slots. So here each operation is the same script reduced to the session's own key,
returning the session's previous user, followed by the index commands it implies, sent to
the user's key alone. The index key carries the user as a hash tag (``session:user:{42}``),
so everything about one user's index is one slot; no command spans two slots.

What changes against one server: the session write and its index update are two commands,
not one atomic script. A Redis failure between them leaves a session the index does not list
(``remove_user`` would miss it until it expires); a concurrent ``remove_user`` removes only
the ids it read, so a session saved meanwhile stays listed.
"""

from __future__ import annotations

import weakref
from typing import Any

__all__ = ["CLUSTER_SCRIPTS", "cluster_eval_async", "user_index_key"]

# Every script touches KEYS[1] only and returns {result, previous user ('' for none)}.
CLUSTER_SCRIPTS = {
    "load": """
local r = redis.call('HGETALL', KEYS[1])
if #r == 0 then return false end
return {r, redis.call('PTTL', KEYS[1])}
""",
    # ARGV: 1 ttl ms, 2 user, 3 user prefix, 4 session id, 5 blob, 6 expected version
    "save": """
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0') or 0
if v ~= tonumber(ARGV[6]) then return {-1, ''} end
local old = redis.call('HGET', KEYS[1], 'u') or ''
redis.call('DEL', KEYS[1])
v = v + 1
redis.call('HSET', KEYS[1], 'd', ARGV[5], 'v', v, 'u', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {v, old}
""",
    # ARGV: 1 ttl ms, 2 user, 3 user prefix, 4 session id, 5 set_user, then field/value pairs
    "merge": """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, ''} end
local old = redis.call('HGET', KEYS[1], 'u') or ''
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'u', ARGV[2]) end
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {v, old}
""",
    # ARGV: 1 user prefix, 2 session id
    "remove": """
local u = redis.call('HGET', KEYS[1], 'u') or ''
return {redis.call('DEL', KEYS[1]), u}
""",
    # ARGV: 1 ttl ms, 2 user prefix
    "expire": """
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then return {0, ''} end
return {1, redis.call('HGET', KEYS[1], 'u') or ''}
""",
    # The user's index (KEYS[1]): ARGV 1 session id to add ('' none), 2 ttl ms to keep.
    "index": """
if ARGV[1] ~= '' then redis.call('SADD', KEYS[1], ARGV[1]) end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
""",
}

_registered: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def user_index_key(user_prefix: str, user_id: str) -> str:
    """The index key of ``user_id`` on a cluster: the user is the hash tag."""
    return f"{user_prefix}{{{user_id}}}"


def _script(client: Any, which: str) -> Any:
    scripts = _registered.get(client)
    if scripts is None:
        scripts = _registered[client] = {}
    script = scripts.get(which)
    if script is None:
        script = scripts[which] = client.register_script(CLUSTER_SCRIPTS[which])
    return script


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


async def _aindex(client: Any, key: str, session_id: str, ttl: Any) -> None:
    await _script(client, "index")(keys=[key], args=[session_id, ttl])


async def cluster_eval_async(
    client: Any, which: str, keys: list[str], args: list[Any], user_prefix: str
) -> Any:
    """Run RedisStore's script ``which`` on a cluster; the reply is the one-server script's."""
    if which == "load":
        return await _script(client, "load")(keys=keys, args=args)
    if which == "user":
        return await _aremove_user(client, keys[0][len(user_prefix) :], args[0], user_prefix)
    result, old_user = await _script(client, which)(keys=keys, args=args)
    old = _text(old_user)
    if which in ("save", "merge") and int(result) >= 0:
        user = _text(args[1])
        if which == "save" or args[4] == "1":
            if old and old != user:
                await client.srem(user_index_key(user_prefix, old), args[3])
            if user:
                await _aindex(client, user_index_key(user_prefix, user), args[3], args[0])
    elif which == "remove" and old:
        await client.srem(user_index_key(user_prefix, old), args[1])
    elif which == "expire" and old and int(result):
        await _aindex(client, user_index_key(user_prefix, old), "", args[0])
    return result


async def _aremove_user(client: Any, user_id: str, prefix: str, user_prefix: str) -> int:
    """Delete every session the user's index lists, one single-slot DEL each."""
    index = user_index_key(user_prefix, user_id)
    ids = [_text(i) for i in await client.smembers(index)]
    removed = 0
    for session_id in ids:
        removed += int(await client.delete(prefix + session_id))
    if ids:
        await client.srem(index, *ids)
    return removed
