"""Resumable, locked HTTP downloads, verified before they become visible.

A download goes to `<dest>.part`, resumes it with an HTTP Range request after a dropped
connection, and is renamed to `<dest>` only after its sha256 matched. A file lock on
`<dest>.lock` makes a second process wait and then reuse the first one's file.

What it refuses: more bytes than expected (or than DEFAULT_MAX_BYTES), a body trickling in under
MIN_RATE (its attempts use up the retries), a redirect away from https
(or, from a plain-http URL, to another host), and file:// URLs the user did not write.
An interrupted download keeps its `.part` file, so the next run resumes it.
"""

from __future__ import annotations

import http.client
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from modelzoo.core.artifacts.cache import sha256_file
from modelzoo.core.atomic import held, resumable
from modelzoo.core.console import stderr_line
from modelzoo.core.errors import DownloadError
from modelzoo.core.version import zoo_version

DEFAULT_TIMEOUT = 20.0  # per connect and per read; a stalled transfer fails, a slow one does not
_BACKOFF = 0.4  # seconds before the first retry, doubled each time: 0.4 + 0.8 + 1.6 for 3 retries
_CHUNK = 1 << 18
DEFAULT_MAX_BYTES = 4 << 30  # when the size is unknown: generous, but an endless response cannot fill the disk
# A body that trickles in (a byte now and then, each within the read timeout) would take forever: under
# MIN_RATE bytes/s over a SLOW_WINDOW the attempt is dropped, and such attempts use up the retries.
MIN_RATE = 1024
SLOW_WINDOW = 60.0


class _Retry(Exception):
    """A failure worth another attempt (connection trouble, 5xx, a short body)."""


class _Slow(_Retry):
    """A transfer under MIN_RATE: retried, but the bytes it brought do not count as progress."""


def download(
    url: str,
    dest,
    sha256: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = 3,
    progress: bool = True,
    hint: str | None = None,
    max_bytes: int | None = None,
    allow_file: bool = False,
) -> str:
    """Download `url` to `dest` unless a verified copy is already there; returns the file's sha256.

    `hint` says how to supply the file by hand; it ends every error message. `max_bytes` is the
    expected size where known (default DEFAULT_MAX_BYTES); `allow_file` accepts a file:// URL the user wrote.
    """
    from filelock import FileLock

    hint = hint or "download it by other means and run `zoo fetch MODEL --weights FILE`"
    scheme = _check_scheme(url, allow_file, hint)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = sha256.lower() if sha256 else None
    lock = FileLock(str(dest) + ".lock")
    with held(lock, f"downloading {dest.name}", stderr_line if progress else None, patience=1):
        if dest.is_file():
            actual = sha256_file(dest)
            if expected is None or actual == expected:
                return actual  # another process (or an earlier run) already finished it
            dest.unlink()  # corrupt: fetch it again
        part = dest.with_name(dest.name + ".part")
        reporter = _Progress(dest.name, progress)
        if scheme == "file":
            print(f"{url} is a local file: copying it, not downloading it", file=sys.stderr)
            retries = 0  # a missing or unreadable local file does not come back by waiting
        with resumable(part):  # an interruption keeps the .part, and says so
            try:
                _fetch_with_retries(url, part, timeout, retries, reporter, hint, max_bytes)
            finally:
                reporter.done()
            actual = sha256_file(part)
            if expected is not None and actual != expected:
                part.unlink(missing_ok=True)
                raise DownloadError(
                    f"checksum mismatch for {url}: expected sha256 {expected}, got {actual}; "
                    f"the download was discarded. Retry, or {hint}"
                )
            part.replace(dest)
        return actual


def _check_scheme(url: str, allow_file: bool, hint: str) -> str:
    """The URL's scheme, if zoo may fetch it; otherwise a DownloadError."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme == "file" and not allow_file:
        raise DownloadError(
            f"refusing {url}: a file:// URL is accepted only where you write it yourself (zoo.yaml); {hint}"
        )
    if scheme not in ("https", "http", "file"):
        raise DownloadError(f"cannot download {url}: zoo downloads only https:// and http:// URLs; {hint}")
    return scheme


def _redirect_allowed(origin: str, target: str) -> bool:
    """Redirects go to https, or from a plain-http URL to the same host over http: never down to plain http."""
    old, new = urllib.parse.urlsplit(origin), urllib.parse.urlsplit(target)
    if new.scheme.lower() == "https":
        return True
    return old.scheme.lower() == new.scheme.lower() == "http" and old.hostname == new.hostname


def _refused_redirect(url: str, target: str, hint: str) -> DownloadError:
    return DownloadError(
        f"refused the redirect from {url} to {target}: zoo follows redirects only to https "
        f"(or, from an http:// URL, to the same host); use an https:// URL, or {hint}"
    )


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only where `_redirect_allowed` says so."""

    def __init__(self, origin: str, hint: str):
        self.origin = origin
        self.hint = hint

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not _redirect_allowed(self.origin, newurl):
            fp.close()
            raise _refused_redirect(self.origin, newurl, self.hint)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _too_large(url: str, limit: int, hint: str, expected: bool, announced: int | None = None) -> DownloadError:
    allowed = f"the {limit} bytes expected" if expected else f"{limit} bytes, zoo's limit for a file of unknown size"
    what = f"is {announced} bytes" if announced is not None else "sent more"
    return DownloadError(
        f"{url} {what}, more than {allowed}; the download was stopped and discarded. Check the URL, or {hint}"
    )


def _fetch_with_retries(
    url: str, part: Path, timeout: float, retries: int, reporter: _Progress, hint: str, max_bytes: int | None
) -> None:
    local = urllib.parse.urlsplit(url).scheme.lower() == "file"
    advice = "Check the path" if local else "Check the network connection (and any proxy)"
    failures = 0
    while True:
        before = _size(part)
        try:
            _attempt(url, part, timeout, reporter, hint, max_bytes)
            return
        except _Slow as exc:
            reason = str(exc)
            before = _size(part)  # a trickle is no progress: it must not reset the retry budget
        except _Retry as exc:
            reason = str(exc)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = _describe(exc)
            if isinstance(getattr(exc, "reason", exc), socket.gaierror):
                # no DNS means no network: waiting and asking again will not change that
                raise DownloadError(f"could not download {url}: {reason}. {advice}, or {hint}") from None
        # Progress resets the budget: a flaky link that keeps delivering bytes gets there.
        failures = 0 if _size(part) > before else failures + 1
        if failures > retries:
            raise DownloadError(f"could not download {url}: {reason}. {advice}, or {hint}")
        if failures:
            time.sleep(_BACKOFF * 2 ** (failures - 1))


def _attempt(url: str, part: Path, timeout: float, reporter: _Progress, hint: str, max_bytes: int | None) -> None:
    """One request; on return `part` holds the whole body, at most `max_bytes` (else DEFAULT_MAX_BYTES)."""
    limit = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    offset = _size(part)
    headers = {"User-Agent": f"modelzoo/{zoo_version()}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener(_SafeRedirects(url, hint))
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        location = urllib.parse.urljoin(url, exc.headers.get("Location") or "")
        if 300 <= exc.code < 400 and not _redirect_allowed(url, location):
            # urllib refuses a redirect to file:// and such itself, before _SafeRedirects is asked
            raise _refused_redirect(url, location, hint) from None
        if exc.code == 416 and offset:
            part.unlink()  # the partial file is not a prefix the server knows; start over
            raise _Retry("the server refused to resume (HTTP 416)") from None
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Retry(f"the server answered HTTP {exc.code} {exc.reason}") from None
        raise DownloadError(
            f"could not download {url}: the server answered HTTP {exc.code} {exc.reason}; {hint}"
        ) from None
    with response:
        total = None
        mode = "wb"
        if offset and response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range", ""))
            if start != offset:
                part.unlink()
                raise _Retry(f"the server resumed at byte {start}, not {offset}")
            mode = "ab"
        else:
            # No Range sent, or the server ignored it and sends everything: start over.
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if total is not None and total > limit:
            part.unlink(missing_ok=True)
            raise _too_large(url, limit, hint, max_bytes is not None, announced=total)
        received = offset
        window_start, window_bytes = time.monotonic(), received
        with open(part, mode) as out:
            # read1 returns what has arrived, so a stalled or endless body is checked as it streams;
            # reading one byte past the limit is how an over-long body shows itself
            while chunk := response.read1(min(_CHUNK, limit - received + 1)):
                if received + len(chunk) > limit:
                    out.close()
                    part.unlink(missing_ok=True)
                    raise _too_large(url, limit, hint, max_bytes is not None)
                out.write(chunk)
                out.flush()  # what was received is on disk, so even a killed run resumes from it
                received += len(chunk)
                reporter.update(received, total)
                now = time.monotonic()
                if now - window_start >= SLOW_WINDOW:
                    rate = (received - window_bytes) / (now - window_start)
                    if rate < MIN_RATE:
                        raise _Slow(f"the transfer slowed to {rate:.0f} bytes/s, under {MIN_RATE} bytes/s")
                    window_start, window_bytes = now, received
    if total is not None and received < total:
        raise _Retry(f"the connection closed after {received} of {total} bytes")


def _content_range(value: str) -> tuple:
    """(first byte, total size or None) from 'bytes 100-199/200'."""
    try:
        _unit, _, spec = value.partition(" ")
        span, _, total = spec.partition("/")
        start = int(span.split("-", 1)[0])
        return start, (int(total) if total.isdigit() else None)
    except ValueError:
        return -1, None


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, socket.gaierror):
        return f"the host name could not be resolved ({reason.strerror or reason})"
    if isinstance(reason, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "the connection timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class _Progress:
    """A progress line on a terminal; elsewhere (logs, CI) at most four percentage lines, or, when
    the size is not announced, a line every INTERVAL seconds and one at the end."""

    INTERVAL = 3.0

    def __init__(self, label: str, enabled: bool, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.label = label
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.first = None
        self.next_quarter = 1
        self.drawn = False
        self.received = None  # bytes of a download of unknown size, off a terminal

    def update(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if self.first is None:
            self.first = done
        now = time.monotonic()
        if self.tty:
            if now - self.last_draw < 0.1 and done != total:
                return
            self.last_draw = now
            rate = (done - self.first) / max(now - self.started, 1e-6) / 1e6
            if total:
                text = f"{self.label} {100 * done // total:3d}% {done / 1e6:.1f}/{total / 1e6:.1f} MB {rate:.1f} MB/s"
            else:
                text = f"{self.label} {done / 1e6:.1f} MB {rate:.1f} MB/s"
            self.stream.write("\r" + text.ljust(70))
            self.stream.flush()
            self.drawn = True
        elif total:
            reached = min(4, done * 4 // total)
            if reached >= self.next_quarter:
                print(f"{self.label}: {25 * reached}% of {total / 1e6:.1f} MB", file=self.stream)
                self.next_quarter = reached + 1
        elif now - self.last_draw >= self.INTERVAL:
            # no size to take quarters of (no Content-Length): a line every few seconds, so a log
            # shows that a long download is moving
            self.last_draw = now
            self.received = done
            print(f"{self.label}: {done / 1e6:.1f} MB so far (size not announced)", file=self.stream)
        else:
            self.received = done

    def done(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False
        elif self.received is not None:
            print(f"{self.label}: {self.received / 1e6:.1f} MB received", file=self.stream)
            self.received = None
