"""The HTTP edge: everything that speaks HTTP so that handlers and services need not.

protocol (HTTP/1.1 with limits on a request's head), middleware (body limits, path guard,
security headers, CORS), multipart (streaming form bodies), tus (the
resumable-upload protocol's headers), ranges (206/304/416), problems (errors as
problem+json), security (bearer tokens, the caller's account), request (per-request
database session and runtime), responses (JSON answers, Content-Disposition).
"""
