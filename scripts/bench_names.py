"""What the README scripts share: how `ferry bench` JSON sizes are written."""


def size(b):
    """Bytes as the bench's tables name them: 4 KiB, 1 MiB, 100 B."""
    if b >= 1 << 20 and b % (1 << 20) == 0:
        return f"{b >> 20} MiB"
    if b >= 1 << 10 and b % (1 << 10) == 0:
        return f"{b >> 10} KiB"
    return f"{b} B"
