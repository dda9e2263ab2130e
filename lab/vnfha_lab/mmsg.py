"""Batched datagram reads and writes: Linux recvmmsg(2) and sendmmsg(2) through ctypes.

Measured for the keepalive intake and not adopted (docs/sizing.md, "The intake's
syscalls"; bench/mmsg_cost.py): decoding each result in Python costs about what the
syscall it saves did, so the intake thread's CPU per datagram did not move by the
1.5 us that would have justified it. Kept here, out of the product, so the figures
can be re-measured (for instance once the intake runs in its own process).

`recv_batch` reads up to `max_count` datagrams in one syscall and returns exactly what
`socket.recvmsg` would have returned for each (data, ancillary list, flags, address),
so a caller's loop changes by a line; `send_batch` sends a list of (data, address) in
one syscall.

The buffers (headers, iovecs, data, control and address slots) are allocated once per
`BatchReader`/`BatchSender` and reused; results are decoded from them with C-level
`struct` and slice operations. A reader and a sender belong to one thread at a time
(the module functions keep one per thread). ctypes releases the GIL during the call.

Where libc has no such call, or ctypes is missing, or the socket has a Python-level
timeout (which ctypes would bypass), the same results come from a loop of the plain
calls (logged once). Nothing received is logged.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import sys
import threading
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("vnfha_lab.mmsg")

#: Linux MSG_WAITFORONE (Python does not name it): block for the first datagram only
MSG_WAITFORONE = 0x10000
#: bytes of control data decoded without the general walk when they come alone: a
#: struct timespec (SO_TIMESTAMPNS, the fast path's receive stamp)
_STAMP = 16
_EAGAIN = os.strerror(errno.EAGAIN)
#: decoded source addresses kept (raw sockaddr -> Python tuple), then the cache restarts
ADDR_CACHE = 4096

Received = tuple[bytes, list[tuple[int, int, bytes]], int, Any]
Failed = tuple[int, OSError]

try:  # ctypes is optional in some Python builds; without it, the plain calls
    import ctypes
except ImportError:  # pragma: no cover - not on the supported platforms
    ctypes = None  # type: ignore[assignment]


def _libc_calls() -> tuple[Any, Any]:
    """(recvmmsg, sendmmsg) from the C library, each None where it is absent."""
    if ctypes is None or not sys.platform.startswith("linux"):
        return None, None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None, None
    recv = getattr(libc, "recvmmsg", None)
    send = getattr(libc, "sendmmsg", None)
    # No argtypes: converting each argument through them costs more than the call
    # (~0.3 us); the callers pass Python ints (C int: the fd, a count <= the buffers,
    # flags), a c_void_p for the array and None for the NULL timeout. restype: int.
    return recv, send


_RECVMMSG, _SENDMMSG = _libc_calls()
_fallback_logged: set[str] = set()


def _note_fallback(call: str, why: str) -> None:
    """Log once per call name that the plain loop replaces it (a cost, not an error)."""
    if call not in _fallback_logged:
        _fallback_logged.add(call)
        log.warning("batched datagram call unavailable; using one syscall per datagram",
                    extra={"call": call, "reason": why})


def _layout() -> dict[str, int]:
    """Offsets and sizes of struct mmsghdr, iovec and cmsghdr on this platform, from
    ctypes' own C layout rules (so a 32-bit build gets its own)."""
    c = ctypes

    class IoVec(c.Structure):
        _fields_ = (("base", c.c_void_p), ("len", c.c_size_t))

    class MsgHdr(c.Structure):
        _fields_ = (("name", c.c_void_p), ("namelen", c.c_uint32),
                    ("iov", c.c_void_p), ("iovlen", c.c_size_t),
                    ("control", c.c_void_p), ("controllen", c.c_size_t),
                    ("flags", c.c_int))

    class MMsgHdr(c.Structure):
        _fields_ = (("hdr", MsgHdr), ("len", c.c_uint))

    class CMsgHdr(c.Structure):
        _fields_ = (("len", c.c_size_t), ("level", c.c_int), ("type", c.c_int))

    return {
        "mmsg": c.sizeof(MMsgHdr), "iov": c.sizeof(IoVec), "ptr": c.sizeof(c.c_void_p),
        "size_t": c.sizeof(c.c_size_t),
        "name": MsgHdr.name.offset, "namelen": MsgHdr.namelen.offset,
        "iovp": MsgHdr.iov.offset, "iovlen": MsgHdr.iovlen.offset,
        "control": MsgHdr.control.offset, "controllen": MsgHdr.controllen.offset,
        "flags": MsgHdr.flags.offset, "len": MMsgHdr.len.offset,
        "cmsg": c.sizeof(CMsgHdr), "cmsg_level": CMsgHdr.level.offset,
        "cmsg_type": CMsgHdr.type.offset,
    }


def _fmt(size: int, fields: Sequence[tuple[int, str]]) -> struct.Struct:
    """A native-endian struct of `size` bytes with `fields` (offset, code) at those
    offsets and padding elsewhere (standard sizes: I=4, i=4, Q=8)."""
    out, at = "=", 0
    for off, code in sorted(fields):
        if off > at:
            out += f"{off - at}x"
        out += code
        at = off + struct.calcsize("=" + code)
    if size > at:
        out += f"{size - at}x"
    return struct.Struct(out)


def _address(data: bytearray) -> int:
    """The address of a writable buffer's first byte (for the C headers)."""
    return ctypes.addressof((ctypes.c_char * len(data)).from_buffer(data))


def _decode_addr(raw: bytes) -> Any:
    """A sockaddr as `socket.recvmsg` gives it: (host, port) for IPv4, (host, port,
    flowinfo, scope_id) for IPv6 (a link-local host with its scope, as getnameinfo
    writes it); None for an empty one. Only those families take the native path."""
    if not raw:
        return None
    fam = int.from_bytes(raw[:2], sys.byteorder)
    if fam == socket.AF_INET and len(raw) >= 8:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), int.from_bytes(raw[2:4], "big")
    if fam == socket.AF_INET6 and len(raw) >= 28:
        packed = raw[8:24]
        host = socket.inet_ntop(socket.AF_INET6, packed)
        scope = int.from_bytes(raw[24:28], sys.byteorder)
        # getnameinfo(NI_NUMERICHOST) names the scope of link-local unicast (fe80::/10)
        # and link-local multicast (ff02::/16) addresses, by interface name if it has one
        if scope and ((packed[0] == 0xFE and packed[1] & 0xC0 == 0x80)
                      or (packed[0] == 0xFF and packed[1] & 0x0F == 0x02)):
            try:
                host += "%" + socket.if_indextoname(scope)
            except OSError:
                host += f"%{scope}"
        return (host, int.from_bytes(raw[2:4], "big"),
                int.from_bytes(raw[4:8], "big"), scope)
    raise ValueError(f"unsupported address family {fam}")


def _encode_addr(family: int, addr: Any) -> bytes | None:
    """The sockaddr for a destination given as to `sendto`; None when only the plain
    call can tell (a host name, a scoped IPv6 literal, a bad tuple: it raises then)."""
    try:
        if family == socket.AF_INET:
            host, port = addr
            return (socket.AF_INET.to_bytes(2, sys.byteorder) + port.to_bytes(2, "big")
                    + socket.inet_pton(socket.AF_INET, host) + bytes(8))
        if family == socket.AF_INET6 and 2 <= len(addr) <= 4:
            host, port, flow, scope = (*addr, 0, 0)[:4]
            return (socket.AF_INET6.to_bytes(2, sys.byteorder) + port.to_bytes(2, "big")
                    + flow.to_bytes(4, "big") + socket.inet_pton(socket.AF_INET6, host)
                    + scope.to_bytes(4, sys.byteorder))
    except (OSError, ValueError, TypeError, AttributeError, OverflowError):
        return None
    return None


class BatchReader:
    """Preallocated buffers for reading up to `max_count` datagrams of `bufsize` bytes
    with `ancsize` bytes of control data each, as `socket.recvmsg(bufsize, ancsize)`.

    The kernel's per-message results are decoded in C (`struct.iter_unpack` over the
    header array and over a side array holding each datagram's source address and its
    control data), so Python does a handful of operations per datagram: the data is
    copied out once, a source address is decoded once and then looked up by its raw
    bytes, and the common control data (one struct timespec: the receive stamp) comes
    out of the same unpack; anything else is walked as `recvmsg` walks it."""

    def __init__(self, max_count: int, bufsize: int, ancsize: int,
                 native: bool = True) -> None:
        if max_count < 1 or bufsize < 0 or ancsize < 0:
            raise ValueError("max_count must be >= 1, bufsize and ancsize >= 0")
        self.max_count, self.bufsize, self.ancsize = max_count, bufsize, ancsize
        self._pending: OSError | None = None  # an error after a partial fallback batch
        self._addrs: dict[bytes, Any] = {}
        self._family: tuple[socket.socket | None, int] = (None, 0)
        self.native = native and _RECVMMSG is not None
        if not self.native:
            if native:
                _note_fallback("recvmmsg", "not in this C library")
            return
        lay = _layout()
        n, size, iov_size = max_count, lay["mmsg"], lay["iov"]
        head, align = lay["cmsg"], lay["size_t"]
        self._size, self._head, self._align = size, head, align
        ctl_space = -(-ancsize // 8) * 8
        name = 32  # a sockaddr_in6 (28 bytes: the largest of the two families), aligned
        self._side = side = name + ctl_space  # per datagram: its address, its control data
        self._hdrs = bytearray(n * size)
        self._sides = bytearray(n * side)
        self._iovs = bytearray(n * iov_size)
        self._data = bytearray(max(1, n * bufsize))
        self._hview, self._sview = memoryview(self._hdrs), memoryview(self._sides)
        self._dview = memoryview(self._data)
        sides, iovs, data = (_address(b) for b in (self._sides, self._iovs, self._data))
        self._hdr_ptr = ctypes.c_void_p(_address(self._hdrs))
        ptr = "Q" if lay["ptr"] == 8 else "I"
        szt = "Q" if lay["size_t"] == 8 else "I"
        iov = _fmt(iov_size, [(0, ptr), (lay["ptr"], szt)])
        hdr = _fmt(size, [(lay["name"], ptr), (lay["namelen"], "I"), (lay["iovp"], ptr),
                          (lay["iovlen"], szt), (lay["control"], ptr),
                          (lay["controllen"], szt)])
        for i in range(n):
            iov.pack_into(self._iovs, i * iov_size, data + i * bufsize, bufsize)
            hdr.pack_into(self._hdrs, i * size, sides + i * side, 28,
                          iovs + i * iov_size, 1,
                          sides + i * side + name if ancsize else 0, ancsize)
        #: the headers as the kernel must find them (it writes msg_namelen and
        #: msg_controllen back, which it also reads): copied over the used ones. The
        #: side records need no reset: only what the kernel reports written is read.
        self._template = memoryview(bytes(self._hdrs))
        self._dirty = 0  # headers (from the first) the kernel wrote into since
        #: what the kernel wrote back, per datagram: (namelen, controllen, flags, len)
        self._out = _fmt(size, [(lay["namelen"], "I"), (lay["controllen"], szt),
                                (lay["flags"], "i"), (lay["len"], "I")])
        self._cmsg = _fmt(head, [(0, szt), (lay["cmsg_level"], "i"),
                                 (lay["cmsg_type"], "i")])
        #: a lone control message of a timespec: its cmsg_len and its controllen
        self._one_len = head + _STAMP
        self._one_space = -(-head // align) * align + -(-_STAMP // align) * align
        self._ctl_at = name
        fields: list[tuple[int, str]] = [(0, "28s")]
        self._stamped = ancsize >= self._one_space
        if self._stamped:  # (raw address, cmsg_len, level, type, 16 bytes of data)
            fields += [(name, szt), (name + lay["cmsg_level"], "i"),
                       (name + lay["cmsg_type"], "i"), (name + head, f"{_STAMP}s")]
        self._side_fmt = _fmt(side, fields)

    def recv(self, sock: socket.socket, flags: int = 0,
             max_count: int | None = None) -> list[Received]:
        """Up to `max_count` (at most the reader's) datagrams queued on `sock`, as
        `socket.recvmsg` returns them, oldest first. With MSG_DONTWAIT, a list shorter
        than asked means the socket had no more (on a UDP socket; another error after
        the first datagram is kept by the kernel for the next call); with no datagram,
        BlockingIOError. Without MSG_DONTWAIT or MSG_WAITFORONE a blocking socket waits
        for all of them, as recvmmsg(2) does. Other errors: OSError, as recvmsg."""
        count = self.max_count if max_count is None else min(max_count, self.max_count)
        if count < 1:
            raise ValueError("max_count must be >= 1")
        known, family = self._family
        if known is not sock:  # `socket.family` builds an enum on every read: once
            family = sock.family
            self._family = (sock, family)
        timeout = sock.gettimeout()
        if (not self.native or (timeout is not None and timeout != 0.0)
                or family not in (socket.AF_INET, socket.AF_INET6)):
            return self._plain(sock, flags, count)
        dirty = self._dirty
        if dirty:  # the lengths the last call got back, reset as the kernel must find them
            self._hview[:dirty * self._size] = self._template[:dirty * self._size]
            self._dirty = 0
        fd = sock.fileno()
        while True:
            got: int = _RECVMMSG(fd, self._hdr_ptr, count, flags, None)
            if got >= 0:
                break
            err = ctypes.get_errno()
            if err == errno.EAGAIN:  # the common one (an empty socket): quickly
                raise BlockingIOError(err, _EAGAIN)
            if err != errno.EINTR:
                raise OSError(err, os.strerror(err))  # OSError picks the subclass
        self._dirty = got  # the kernel wrote into these (and into none after them)
        addrs = self._addrs
        if got == 1:  # (no iterators for a lone datagram)
            namelen, ctllen, mflags, mlen = self._out.unpack_from(self._hview)
            side = self._side_fmt.unpack_from(self._sview)
            addr = addrs.get(side[0])
            if addr is None:
                addr = self._new_addr(side[0], namelen)
            if ctllen == self._one_space and self._stamped and side[1] == self._one_len:
                anc = [(side[2], side[3], side[4])]
            else:
                anc = self._cmsgs(0, ctllen) if ctllen else []
            return [(bytes(self._dview[:mlen]), anc, mflags, addr)]
        return self._decode(got)

    def _decode(self, got: int) -> list[Received]:
        out: list[Received] = []
        append = out.append
        dview, addrs, bufsize = self._dview, self._addrs, self.bufsize
        results = zip(self._out.iter_unpack(self._hview[:got * self._size]),
                      self._side_fmt.iter_unpack(self._sview[:got * self._side]),
                      strict=True)
        doff = 0
        if self._stamped:
            one_len, one_space = self._one_len, self._one_space
            for (namelen, ctllen, mflags, mlen), (raw, clen, level, kind, stamp) in results:
                addr = addrs.get(raw)
                if addr is None:
                    addr = self._new_addr(raw, namelen)
                if ctllen == one_space and clen == one_len:
                    anc = [(level, kind, stamp)]
                elif ctllen:
                    anc = self._cmsgs(len(out), ctllen)
                else:
                    anc = []
                append((bytes(dview[doff:doff + mlen]), anc, mflags, addr))
                doff += bufsize
            return out
        for i, ((namelen, ctllen, mflags, mlen), (raw,)) in enumerate(results):
            addr = addrs.get(raw)
            if addr is None:
                addr = self._new_addr(raw, namelen)
            append((bytes(dview[i * bufsize:i * bufsize + mlen]),
                    self._cmsgs(i, ctllen) if ctllen else [], mflags, addr))
        return out

    def _new_addr(self, raw: bytes, namelen: int) -> Any:
        """Decode a source address not seen lately and remember it by its raw slot.
        The slot is not cleared between reads: past `namelen` (16 bytes for IPv4) it
        may hold an older address's bytes, so one address can have several keys, but
        each key's value is a function of the key (its family bytes fix `namelen`)."""
        addr = _decode_addr(raw[:namelen])
        if len(self._addrs) >= ADDR_CACHE:
            self._addrs.clear()
        self._addrs[raw] = addr
        return addr

    def _cmsgs(self, index: int, length: int) -> list[tuple[int, int, bytes]]:
        """The control messages of datagram `index` as `socket.recvmsg` lists them: a
        message cut short by a small buffer keeps the bytes that fit (MSG_CTRUNC)."""
        out = []
        view = self._sview
        start = index * self._side + self._ctl_at
        end = start + min(length, self.ancsize)
        head, align = self._head, self._align
        off = start
        while end - off >= head:  # glibc's CMSG_FIRSTHDR / CMSG_NXTHDR, as recvmsg walks
            clen, level, kind = self._cmsg.unpack_from(view, off)
            if clen < head or (off > start and off + ((clen + align - 1) & -align) > end):
                break
            out.append((level, kind, bytes(view[off + head:min(off + clen, end)])))
            off += (clen + align - 1) & -align
        return out

    def _plain(self, sock: socket.socket, flags: int, count: int) -> list[Received]:
        """recvmmsg's semantics from a loop of recvmsg. (A socket with a Python-level
        timeout waits up to it for each read, MSG_DONTWAIT or not: Python polls first;
        running out of time after the first datagram just ends the batch.)"""
        if self._pending is not None:
            err, self._pending = self._pending, None
            raise err
        out: list[Received] = []
        first = flags & ~MSG_WAITFORONE
        later = first | socket.MSG_DONTWAIT if flags & MSG_WAITFORONE else first
        while len(out) < count:
            try:
                out.append(sock.recvmsg(self.bufsize, self.ancsize,
                                        later if out else first))
            except OSError as e:
                if not out:
                    raise
                if not isinstance(e, (BlockingIOError, TimeoutError)):
                    self._pending = e  # as the kernel does: reported by the next call
                break
        return out


class BatchSender:
    """Preallocated buffers for sending up to `max_count` datagrams of at most
    `bufsize` bytes in one sendmmsg(2)."""

    def __init__(self, max_count: int, bufsize: int, native: bool = True) -> None:
        if max_count < 1 or bufsize < 1:
            raise ValueError("max_count and bufsize must be >= 1")
        self.max_count, self.bufsize = max_count, bufsize
        #: per address family, destination -> its sockaddr (None: only sendto can tell)
        self._names: dict[int, dict[Any, bytes | None]] = {}
        self._family: tuple[socket.socket | None, int] = (None, 0)
        self.native = native and _SENDMMSG is not None
        if not self.native:
            if native:
                _note_fallback("sendmmsg", "not in this C library")
            return
        lay = _layout()
        n, size = max_count, lay["mmsg"]
        self._size, self._iov_size = size, lay["iov"]
        self._iov_len = lay["ptr"]
        self._name_slot = 28  # sizeof(struct sockaddr_in6), the largest we encode
        self._data = bytearray(n * bufsize)
        self._namebuf = bytearray(n * self._name_slot)
        self._iovs = bytearray(n * lay["iov"])
        self._hdrs = bytearray(n * size)
        self._dview, self._nview = memoryview(self._data), memoryview(self._namebuf)
        data, names, iovs = (_address(b) for b in (self._data, self._namebuf, self._iovs))
        self._hdr_addr = _address(self._hdrs)
        self._hdr_ptr = ctypes.c_void_p(self._hdr_addr)
        ptr = "Q" if lay["ptr"] == 8 else "I"
        szt = "Q" if lay["size_t"] == 8 else "I"
        self._szt = struct.Struct("=" + szt)
        iov = _fmt(lay["iov"], [(0, ptr), (lay["ptr"], szt)])
        hdr = _fmt(size, [(lay["name"], ptr), (lay["iovp"], ptr), (lay["iovlen"], szt)])
        self._namelen = struct.Struct("=I")
        self._namelen_off = lay["namelen"]
        self._namelen_now = 0  # the msg_namelen every header holds (one family a call)
        for i in range(n):
            iov.pack_into(self._iovs, i * lay["iov"], data + i * bufsize, 0)
            hdr.pack_into(self._hdrs, i * size, names + i * self._name_slot,
                          iovs + i * lay["iov"], 1)

    def send(self, sock: socket.socket, msgs: Sequence[tuple[bytes, Any]],
             flags: int = 0) -> list[Failed]:
        """Send every (data, address) of `msgs` in order, as `sock.sendto(data, flags,
        address)` would, and return the ones that failed: (index, the error sendto
        would have raised). A failure does not stop the ones after it."""
        failed: list[Failed] = []
        known, family = self._family
        if known is not sock:  # `socket.family` builds an enum on every read: once
            family = sock.family
            self._family = (sock, family)
        timeout = sock.gettimeout()
        if (not self.native or len(msgs) < 2 or (timeout is not None and timeout != 0.0)
                or family not in (socket.AF_INET, socket.AF_INET6)):
            # (one datagram: sendto itself costs less than packing it for sendmmsg)
            for i, (data, addr) in enumerate(msgs):
                try:
                    sock.sendto(data, flags, addr)
                except OSError as e:
                    failed.append((i, e))
            return failed
        namelen = 16 if family == socket.AF_INET else 28
        if namelen != self._namelen_now:
            for i in range(self.max_count):
                self._namelen.pack_into(self._hdrs, i * self._size + self._namelen_off,
                                        namelen)
            self._namelen_now = namelen
        names = self._names.get(family)
        if names is None:
            names = self._names[family] = {}
        start = 0
        while start < len(msgs):
            start = self._send_run(sock, msgs, start, flags, family, names, failed)
        return failed

    def _send_run(self, sock: socket.socket, msgs: Sequence[tuple[bytes, Any]],
                  start: int, flags: int, family: int, names: dict[Any, bytes | None],
                  failed: list[Failed]) -> int:
        """Pack msgs[start:] into the buffers until one does not fit them (too large,
        an address only sendto can resolve) or they are full; send the packed ones;
        the unfit one goes alone through sendto. Returns where to continue."""
        bufsize, slot = self.bufsize, self._name_slot
        dview, nview, iovs = self._dview, self._nview, self._iovs
        pack_len, iov_size, iov_len = self._szt.pack_into, self._iov_size, self._iov_len
        k = 0
        i = start
        end = min(len(msgs), start + self.max_count)
        while i < end:
            data, addr = msgs[i]
            try:
                raw = names[addr]
            except KeyError:
                raw = _encode_addr(family, addr)
                if len(names) >= ADDR_CACHE:
                    names.clear()
                names[addr] = raw
            except TypeError:  # unhashable address: sendto will say what is wrong
                raw = None
            n = len(data)
            if raw is None or n > bufsize:
                break
            at = k * bufsize
            dview[at:at + n] = data
            pack_len(iovs, k * iov_size + iov_len, n)
            nview[k * slot:k * slot + len(raw)] = raw
            k += 1
            i += 1
        sent = 0
        fd = sock.fileno()
        while sent < k:
            ptr = self._hdr_ptr if not sent else ctypes.c_void_p(
                self._hdr_addr + sent * self._size)
            got: int = _SENDMMSG(fd, ptr, k - sent, flags)
            if got > 0:
                sent += got
                continue
            err = ctypes.get_errno()
            if got < 0 and err == errno.EINTR:
                continue
            # the first of the rest failed: the kernel says why only for the first
            failed.append((start + sent, OSError(err, os.strerror(err))))
            sent += 1
        if k == 0 and i < len(msgs):  # the one that did not fit goes alone
            data, addr = msgs[i]
            try:
                sock.sendto(data, flags, addr)
            except OSError as e:
                failed.append((i, e))
            i += 1
        return i


_local = threading.local()


def _reader(max_count: int, bufsize: int, ancsize: int) -> BatchReader:
    key = (max_count, bufsize, ancsize)
    readers = getattr(_local, "readers", None)
    if readers is None:
        readers = _local.readers = {}
    reader = readers.get(key)
    if reader is None:
        reader = readers[key] = BatchReader(max_count, bufsize, ancsize)
    return reader


def recv_batch(sock: socket.socket, max_count: int, bufsize: int, ancsize: int = 0,
               flags: int = 0) -> list[Received]:
    """Up to `max_count` datagrams from `sock` in one recvmmsg(2), each as
    `sock.recvmsg(bufsize, ancsize)` returns it (see `BatchReader.recv`). The buffers
    are this thread's, kept for the next call with the same sizes."""
    return _reader(max_count, bufsize, ancsize).recv(sock, flags)


def send_batch(sock: socket.socket, msgs: Sequence[tuple[bytes, Any]], flags: int = 0,
               bufsize: int = 65536, max_count: int = 256) -> list[Failed]:
    """Send (data, address) pairs in order with sendmmsg(2), `max_count` per call;
    returns (index, error) of those that failed (see `BatchSender.send`)."""
    senders = getattr(_local, "senders", None)
    if senders is None:
        senders = _local.senders = {}
    sender = senders.get((max_count, bufsize))
    if sender is None:
        sender = senders[(max_count, bufsize)] = BatchSender(max_count, bufsize)
    return sender.send(sock, msgs, flags)
