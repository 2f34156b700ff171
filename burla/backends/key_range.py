"""Where the keys that start with a prefix end, for stores that keep keys in sorted order."""


def above_prefix(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with `prefix` (None if none).

    Python orders str by code point; SQLite orders TEXT, and Firestore strings, by their
    UTF-8 bytes: the same order, so this bound serves all three.
    """
    while prefix:
        following = ord(prefix[-1]) + 1
        if following <= 0x10FFFF:
            if 0xD800 <= following <= 0xDFFF:  # surrogates cannot be stored; skip them
                following = 0xE000
            return prefix[:-1] + chr(following)
        prefix = prefix[:-1]
    return None
