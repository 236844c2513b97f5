"""openapi_check.py -- check one API response against docs/openapi.json:
its status must be documented for the operation and its body valid for
that status's schema (python3-jsonschema, Draft 2020-12). Used by
test_openapi.py (a walk through every operation) and test_browser.py (every
API response the browser journeys received)."""

import json
import os
import re

import jsonschema

from harness import ROOT

DOC_PATH = os.path.join(ROOT, 'docs', 'openapi.json')
METHODS = ('get', 'post', 'put', 'patch', 'delete')

with open(DOC_PATH, 'rb') as _f:
    DOC = json.loads(_f.read())
_TEMPLATES = [(re.compile('^' + re.sub(r'\\\{[^}]+\\\}', '[^/]+', re.escape(p)) + '$'), p)
              for p in DOC['paths']]


def template(path):
    """The document's path template for an /api path (query ignored)."""
    bare = path.split('?')[0]
    if bare.startswith('/api'):
        bare = bare[len('/api'):]
    found = [t for rx, t in _TEMPLATES if rx.match(bare)]
    return found[0] if len(found) == 1 else None


def problem(method, path, status, content_type, body):
    """None when the response matches the document, else what is wrong."""
    t = template(path)
    if t is None:
        return 'no path template for %s' % path
    op = DOC['paths'][t].get(method.lower())
    if op is None:
        return 'no operation %s %s' % (method, t)
    resp = op['responses'].get(str(status))
    if resp is None:
        return '%s %s: status %d is not documented' % (method, t, status)
    content = resp.get('content')
    if not content:
        return None if not body else '%s %s %d: a body where none is documented' % (
            method, t, status)
    ctype = (content_type or '').split(';')[0].strip()
    if ctype not in content:
        return '%s %s %d: content type %r not documented' % (method, t, status, ctype)
    if ctype != 'application/json':
        return None
    try:
        doc = json.loads(body)
    except ValueError as e:
        return '%s %s %d: not JSON (%s)' % (method, t, status, e)
    schema = dict(content[ctype]['schema'], components=DOC['components'])
    try:
        jsonschema.Draft202012Validator(schema).validate(doc)
    except jsonschema.ValidationError as e:
        return '%s %s %d: %s at %s' % (method, t, status, e.message,
                                       '/'.join(str(x) for x in e.absolute_path))
    return None
