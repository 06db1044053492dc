"""The ``pam`` realm: the host's Linux accounts, checked by libpam (ctypes; Linux-PAM
Application Developers' Guide, ``pam_start``/``pam_authenticate``/``pam_acct_mgmt``) under
the PAM service name ``viridian`` (``/etc/pam.d/viridian`` if the admin installs one,
else PAM's ``other``: Debian's common-auth/common-account). Groups are the account's
Unix groups (``getgrouplist``). The PAM fail delay is switched off: the service's own
login limiter (:mod:`viridian.access.lockout`) throttles."""

from __future__ import annotations

import ctypes
import ctypes.util
import grp
import os
import pwd
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_int,
    c_uint,
    c_void_p,
    cast,
    sizeof,
)

__all__ = ["PAM_SERVICE", "pam_authenticate", "unix_groups"]

PAM_SERVICE = "viridian"
PAM_SUCCESS, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_FAIL_DELAY = 0, 1, 2, 10


class _Message(Structure):
    _fields_ = [("msg_style", c_int), ("msg", c_char_p)]


class _Response(Structure):
    _fields_ = [("resp", c_void_p), ("resp_retcode", c_int)]


_CONV = CFUNCTYPE(c_int, c_int, POINTER(POINTER(_Message)), POINTER(POINTER(_Response)),
                  c_void_p)
_DELAY = CFUNCTYPE(None, c_int, c_uint, c_void_p)


class _Conv(Structure):
    _fields_ = [("conv", _CONV), ("appdata_ptr", c_void_p)]


def _libs() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    pam = ctypes.CDLL(ctypes.util.find_library("pam") or "libpam.so.0")
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.calloc.restype = c_void_p
    libc.strdup.restype = c_void_p
    libc.strdup.argtypes = [c_char_p]
    pam.pam_start.argtypes = [c_char_p, c_char_p, POINTER(_Conv), POINTER(c_void_p)]
    pam.pam_set_item.argtypes = [c_void_p, c_int, c_void_p]
    pam.pam_authenticate.argtypes = [c_void_p, c_int]
    pam.pam_acct_mgmt.argtypes = [c_void_p, c_int]
    pam.pam_end.argtypes = [c_void_p, c_int]
    return pam, libc


def pam_authenticate(user: str, password: str, service: str = PAM_SERVICE) -> bool:
    """Whether PAM accepts ``user``/``password`` and the account is usable now."""
    pam, libc = _libs()
    secret = password.encode()

    def converse(count: int, messages: ctypes._Pointer[ctypes._Pointer[_Message]],
                 answer: ctypes._Pointer[ctypes._Pointer[_Response]], _: int | None) -> int:
        block = libc.calloc(count, sizeof(_Response))
        answer[0] = cast(block, POINTER(_Response))
        for i in range(count):
            if messages[i].contents.msg_style in (PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON):
                answer[0][i].resp = libc.strdup(secret)  # PAM frees what it is given
        return PAM_SUCCESS

    conv_fn, no_delay = _CONV(converse), _DELAY(lambda *_: None)
    conv = _Conv(conv_fn, None)
    handle = c_void_p()
    if pam.pam_start(service.encode(), user.encode(), ctypes.byref(conv),
                     ctypes.byref(handle)) != PAM_SUCCESS:
        return False
    pam.pam_set_item(handle, PAM_FAIL_DELAY, cast(no_delay, c_void_p))
    result = pam.pam_authenticate(handle, 0)
    if result == PAM_SUCCESS:
        result = pam.pam_acct_mgmt(handle, 0)
    pam.pam_end(handle, result)
    return bool(result == PAM_SUCCESS)


def unix_groups(user: str) -> frozenset[str]:
    """Names of the Unix groups ``user`` belongs to (primary and supplementary)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return frozenset()
    names = set()
    for gid in os.getgrouplist(user, entry.pw_gid):
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return frozenset(names)
