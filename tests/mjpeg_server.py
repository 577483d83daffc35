"""Test-only MJPEG-over-HTTP server (what IP cameras serve): plays a video file as a live stream.

``serve(path, fps, loop=True)`` -> (url, stop). Frames are paced in real time and the stream never
ends when ``loop`` is set, so a client must stop it (the live-mode Ctrl-C test does exactly that).
"""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2

BOUNDARY = "frame"


def serve(path: str, fps: float = 10.0, loop: bool = True, port: int = 0):
    frames = []
    cap = cv2.VideoCapture(str(path))
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    cap.release()
    if not frames:
        raise ValueError(f"{path}: no frames")
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):  # quiet
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.end_headers()
            i, t0 = 0, time.monotonic()
            try:
                while not stop.is_set():
                    if i >= len(frames) and not loop:
                        break
                    jpg = frames[i % len(frames)]
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpg)}"
                                     f"\r\n\r\n".encode() + jpg + b"\r\n")
                    i += 1
                    time.sleep(max(0.0, t0 + i / fps - time.monotonic()))
            except (BrokenPipeError, ConnectionResetError):
                pass

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def shutdown():
        stop.set()
        httpd.shutdown()
        httpd.server_close()

    return f"http://127.0.0.1:{httpd.server_address[1]}/stream.mjpg", shutdown
