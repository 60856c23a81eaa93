"""Opus kernel: the binding to the system libopus (linked through pkg-config at build time)."""

cdef extern from "opus.h" nogil:
    const char* opus_get_version_string()


def libopus_version() -> str:
    """The version string of the libopus this build links, e.g. ``"libopus 1.3.1"``."""
    return opus_get_version_string().decode("ascii")
