"""The Store protocol on Redis, for clusters that share one Redis server.

Needs the `redis` extra: pip install 'burla-cluster[redis]'.
"""

from burla.backends.redis.store import RedisStore

__all__ = ["RedisStore"]
