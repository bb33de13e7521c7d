"""A small CEL interpreter for the subset of CEL that CRD validation rules use.

The test API server must refuse what the real one refuses and accept what it accepts, so this
module is strict in both directions: compile() rejects any construct outside the subset (the
server then refuses the CRD and names the rule) instead of guessing, and evaluation follows CEL's
semantics where they differ from Python's (no truthiness, no bool/int mixing, `&&`/`||` absorb
errors, integer division truncates, `matches` is an unanchored RE2 search).

Supported: int/uint/double/string/bool/null/bytes-free literals, list and map literals, field
selection and indexing, has(), == != < <= > >= && || ! ?: in + - * / %, size(), the string
methods startsWith/endsWith/contains/matches, the variables self and oldSelf, and the macros
all/exists/exists_one/map/filter. Everything else (optionals, other functions, messageExpression's
string functions, type conversions) is a CompileError.
"""
import re

__all__ = ["CompileError", "EvalError", "Program", "compile_rule"]


class CompileError(Exception):
    """The rule is not CEL or uses something outside the supported subset."""


class EvalError(Exception):
    """A CEL runtime error (no such key, division by zero, no such overload...). The message is
    worded like cel-go's so that the server's "<err> evaluating rule: <rule>" reads the same."""


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<float>\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
  | (?P<hex>0x[0-9a-fA-F]+u?)
  | (?P<int>\d+u?)
  | (?P<string>[rR]?(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>!?:.,\[\](){}+\-*/%])
""", re.VERBOSE)

_RESERVED = {"as", "break", "const", "continue", "else", "for", "function", "if", "import", "let",
             "loop", "package", "namespace", "return", "var", "void", "while"}
_MACROS = {"all", "exists", "exists_one", "map", "filter"}
_METHODS = {"startsWith", "endsWith", "contains", "matches", "size"}
_VARIABLES = {"self", "oldSelf"}
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "'": "'", '"': '"', "a": "\a",
            "b": "\b", "f": "\f", "v": "\v", "?": "?", "`": "`"}


_ESCAPED = re.compile(r"__(underscores|dot|dash|slash)__")
_ESCAPED_TEXT = {"underscores": "__", "dot": ".", "dash": "-", "slash": "/"}


def _property_name(name):
    """Kubernetes escapes property names that are not CEL identifiers: `__namespace__` for a
    reserved word, `__dash__`, `__dot__`, `__slash__` and `__underscores__` inside a name."""
    m = re.fullmatch(r"__([a-z]+)__", name)
    if m and (m.group(1) in _RESERVED or m.group(1) in ("true", "false", "null", "in")):
        return m.group(1)
    return _ESCAPED.sub(lambda e: _ESCAPED_TEXT[e.group(1)], name)


class UInt(int):
    """A CEL uint (Python has one int type; CEL keeps int and uint apart)."""


def _unquote(text):
    raw = text[0] in "rR"
    if raw:
        text = text[1:]
    body = text[1:-1]
    if raw:
        return body
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        n = body[i + 1]
        if n in _ESCAPES:
            out.append(_ESCAPES[n])
            i += 2
        elif n in "xX":
            out.append(chr(int(body[i + 2:i + 4], 16)))
            i += 4
        elif n == "u":
            out.append(chr(int(body[i + 2:i + 6], 16)))
            i += 6
        elif n == "U":
            out.append(chr(int(body[i + 2:i + 10], 16)))
            i += 10
        elif n in "01234567":
            out.append(chr(int(body[i + 1:i + 4], 8)))
            i += 4
        else:
            raise CompileError(f"invalid escape sequence \\{n}")
    return "".join(out)


def _tokenize(src):
    tokens, pos = [], 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m:
            raise CompileError(f"Syntax error: token recognition error at: '{src[pos]}'")
        pos = m.end()
        kind = m.lastgroup
        text = m.group(kind)
        if kind == "ws":
            continue
        if kind == "float":
            tokens.append(("lit", float(text)))
        elif kind in ("int", "hex"):
            unsigned = text.endswith("u")
            digits = text[:-1] if unsigned else text
            value = int(digits, 16) if kind == "hex" else int(digits)
            tokens.append(("lit", UInt(value) if unsigned else value))
        elif kind == "string":
            tokens.append(("lit", _unquote(text)))
        elif kind == "ident":
            if text == "true":
                tokens.append(("lit", True))
            elif text == "false":
                tokens.append(("lit", False))
            elif text == "null":
                tokens.append(("lit", None))
            elif text == "in":
                tokens.append(("op", "in"))
            elif text in _RESERVED:
                raise CompileError(f"Syntax error: reserved identifier: {text}")
            else:
                tokens.append(("ident", text))
        else:
            tokens.append(("op", text))
    tokens.append(("eof", None))
    return tokens


# Binary operator precedence, lowest first (CEL's grammar: ?: < || < && < relations < + - < * / %).
_PRECEDENCE = {"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3, "in": 3,
               "+": 4, "-": 4, "*": 5, "/": 5, "%": 5}


class _Parser:
    """Precedence climbing into tuples: ("lit", v), ("var", name), ("select", e, field),
    ("has", e, field), ("index", e, i), ("call", name, target|None, args), ("macro", name, target,
    var, body), ("list", items), ("map", pairs), ("unary", op, e), ("binary", op, l, r),
    ("cond", c, a, b)."""

    def __init__(self, src):
        self.tokens = _tokenize(src)
        self.pos = 0

    def peek(self, value=None):
        kind, text = self.tokens[self.pos]
        if value is None:
            return kind, text
        return kind in ("op",) and text == value

    def take(self, value=None):
        tok = self.tokens[self.pos]
        if value is not None and not (tok[0] == "op" and tok[1] == value):
            found = "end of input" if tok[0] == "eof" else repr(tok[1])
            raise CompileError(f"Syntax error: expected '{value}', found {found}")
        self.pos += 1
        return tok

    def parse(self):
        expr = self.expr()
        if self.peek()[0] != "eof":
            raise CompileError(f"Syntax error: unexpected {self.peek()[1]!r}")
        return expr

    def expr(self):
        cond = self.binary(1)
        if self.peek("?"):
            self.take("?")
            a = self.binary(1)
            self.take(":")
            b = self.expr()
            return ("cond", cond, a, b)
        return cond

    def binary(self, min_prec):
        left = self.unary()
        while True:
            kind, text = self.peek()
            prec = _PRECEDENCE.get(text) if kind == "op" else None
            if prec is None or prec < min_prec:
                return left
            self.take()
            right = self.binary(prec + 1)
            left = ("binary", text, left, right)

    def unary(self):
        if self.peek("!"):
            self.take()
            return ("unary", "!", self.unary())
        if self.peek("-"):
            self.take()
            kind, value = self.peek()
            if kind == "lit" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.take()
                return self.postfix(("lit", -value))
            return ("unary", "-", self.unary())
        return self.postfix(self.primary())

    def postfix(self, expr):
        while True:
            if self.peek("."):
                self.take()
                kind, name = self.take()
                if kind != "ident":
                    raise CompileError("Syntax error: expected a field name after '.'")
                if self.peek("("):
                    expr = self.method(expr, name)
                else:
                    expr = ("select", expr, _property_name(name))
            elif self.peek("["):
                self.take()
                index = self.expr()
                self.take("]")
                expr = ("index", expr, index)
            else:
                return expr

    def args(self):
        self.take("(")
        args = []
        if not self.peek(")"):
            args.append(self.expr())
            while self.peek(","):
                self.take()
                args.append(self.expr())
        self.take(")")
        return args

    def method(self, target, name):
        args = self.args()
        if name in _MACROS:
            want = 2
            if len(args) != want or args[0][0] != "var":
                raise CompileError(f"ERROR: unsupported macro form: {name} needs (variable, expression)")
            return ("macro", name, target, args[0][1], args[1])
        if name not in _METHODS:
            raise CompileError(f"ERROR: undeclared reference to '{name}' (in container '')")
        want = 0 if name == "size" else 1
        if len(args) != want:
            raise CompileError(f"ERROR: found no matching overload for '{name}'")
        return ("call", name, target, args)

    def primary(self):
        kind, value = self.take()
        if kind == "lit":
            return ("lit", value)
        if kind == "ident":
            if self.peek("("):
                args = self.args()
                if value == "has":
                    if len(args) != 1 or args[0][0] != "select":
                        raise CompileError("ERROR: invalid argument to has() macro")
                    return ("has", args[0][1], args[0][2])
                if value == "size" and len(args) == 1:
                    return ("call", "size", None, args)
                raise CompileError(f"ERROR: undeclared reference to '{value}' (in container '')")
            if value not in _VARIABLES:
                return ("var", value)  # resolved against macro variables at check time
            return ("var", value)
        if kind == "op" and value == "(":
            inner = self.expr()
            self.take(")")
            return inner
        if kind == "op" and value == "[":
            items = []
            if not self.peek("]"):
                items.append(self.expr())
                while self.peek(","):
                    self.take()
                    if self.peek("]"):
                        break
                    items.append(self.expr())
            self.take("]")
            return ("list", items)
        if kind == "op" and value == "{":
            pairs = []
            if not self.peek("}"):
                while True:
                    key = self.expr()
                    self.take(":")
                    pairs.append((key, self.expr()))
                    if not self.peek(","):
                        break
                    self.take()
                    if self.peek("}"):
                        break
            self.take("}")
            return ("map", pairs)
        if kind == "eof":
            raise CompileError("Syntax error: unexpected end of input")
        raise CompileError(f"Syntax error: unexpected {value!r}")


def _check_names(node, scope):
    """Every identifier must be self, oldSelf or a macro variable in scope."""
    tag = node[0]
    if tag == "var":
        if node[1] not in scope:
            raise CompileError(f"ERROR: undeclared reference to '{node[1]}' (in container '')")
        return
    if tag == "macro":
        _check_names(node[2], scope)
        _check_names(node[4], scope | {node[3]})
        return
    for child in node[1:]:
        if isinstance(child, tuple):
            _check_names(child, scope)
        elif isinstance(child, list):
            for item in child:
                if isinstance(item, tuple) and item and isinstance(item[0], str):
                    _check_names(item, scope)
                elif isinstance(item, tuple):  # a map literal's (key, value) pair
                    for part in item:
                        _check_names(part, scope)


def _uses_old_self(node):
    if node[0] == "var":
        return node[1] == "oldSelf"
    for child in node[1:]:
        if isinstance(child, tuple) and child and isinstance(child[0], str):
            if _uses_old_self(child):
                return True
        elif isinstance(child, tuple):
            if any(_uses_old_self(part) for part in child):
                return True
        elif isinstance(child, list):
            for item in child:
                if isinstance(item, tuple) and item and isinstance(item[0], str):
                    if _uses_old_self(item):
                        return True
                elif isinstance(item, tuple) and any(_uses_old_self(p) for p in item):
                    return True
    return False


class Program:
    """A compiled rule. evaluate() returns the CEL value or raises EvalError."""

    def __init__(self, source, ast):
        self.source = source
        self.ast = ast
        self.uses_old_self = _uses_old_self(ast)

    def evaluate(self, self_value, old_self=None):
        env = {"self": self_value}
        if self.uses_old_self:
            env["oldSelf"] = old_self
        return _eval(self.ast, env)


def compile_rule(source):
    """Parses and checks a rule. Raises CompileError for anything outside the subset."""
    if not isinstance(source, str) or not source.strip():
        raise CompileError("rule is empty")
    ast = _Parser(source).parse()
    _check_names(ast, set(_VARIABLES))
    return Program(source, ast)


# ---- evaluation -------------------------------------------------------------------------------

def _type_name(v):
    if v is None:
        return "null_type"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, UInt):
        return "uint"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "double"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "map"
    return type(v).__name__


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _no_overload(op, *values):
    types = ", ".join(_type_name(v) for v in values)
    return EvalError(f"no such overload: {op}({types})" if values else f"no such overload: {op}")


def _equal(a, b):
    # Heterogeneous numeric equality (Kubernetes enables it); otherwise the types must match.
    if _is_num(a) and _is_num(b):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a == b


def _compare(op, a, b):
    ok = (_is_num(a) and _is_num(b)) or (type(a) is type(b) and isinstance(a, (str, bool)))
    if not ok:
        raise _no_overload(_OP_NAMES[op], a, b)
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


_OP_NAMES = {"<": "_<_", "<=": "_<=_", ">": "_>_", ">=": "_>=_", "+": "_+_", "-": "_-_",
             "*": "_*_", "/": "_/_", "%": "_%_", "in": "@in", "!": "!_", "neg": "-_"}

_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1


def _check_int(v):
    if isinstance(v, UInt):
        if not 0 <= v < (1 << 64):
            raise EvalError("unsigned integer overflow")
    elif isinstance(v, int) and not _INT_MIN <= v <= _INT_MAX:
        raise EvalError("integer overflow")
    return v


def _arith(op, a, b):
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    if op == "+" and isinstance(a, list) and isinstance(b, list):
        return a + b
    same_int = (isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool)
                and not isinstance(b, bool) and isinstance(a, UInt) == isinstance(b, UInt))
    both_double = isinstance(a, float) and isinstance(b, float)
    if not (same_int or both_double):
        raise _no_overload(_OP_NAMES[op], a, b)
    wrap = UInt if isinstance(a, UInt) else (lambda x: x)
    if op == "+":
        return _check_int(wrap(a + b))
    if op == "-":
        return _check_int(wrap(a - b))
    if op == "*":
        return _check_int(wrap(a * b))
    if op == "/":
        if both_double:
            return a / b if b != 0 else (float("inf") if a > 0 else float("-inf") if a < 0 else float("nan"))
        if b == 0:
            raise EvalError("division by zero")
        q = abs(a) // abs(b)
        return _check_int(wrap(q if (a >= 0) == (b >= 0) else -q))
    if op == "%":
        if both_double:
            raise _no_overload("_%_", a, b)
        if b == 0:
            raise EvalError("modulus by zero")
        r = abs(a) % abs(b)
        return wrap(r if a >= 0 else -r)
    raise _no_overload(op, a, b)


def _select(obj, name):
    if isinstance(obj, dict):
        if name not in obj:
            raise EvalError(f"no such key: {name}")
        return obj[name]
    raise EvalError(f"type '{_type_name(obj)}' does not support field selection")


def _index(obj, key):
    if isinstance(obj, list):
        if not (isinstance(key, int) and not isinstance(key, bool)):
            raise _no_overload("_[_]", obj, key)
        if not 0 <= key < len(obj):
            raise EvalError(f"index out of bounds: {key}")
        return obj[key]
    if isinstance(obj, dict):
        if key not in obj or isinstance(key, bool):
            raise EvalError(f"no such key: {key}")
        return obj[key]
    raise _no_overload("_[_]", obj, key)


def _size(v):
    if isinstance(v, (str, list, dict)):
        return len(v)
    raise _no_overload("size", v)


def _call(name, target, args):
    if name == "size":
        return _size(target)
    if not isinstance(target, str) or not isinstance(args[0], str):
        raise _no_overload(name, target, *args)
    if name == "startsWith":
        return target.startswith(args[0])
    if name == "endsWith":
        return target.endswith(args[0])
    if name == "contains":
        return args[0] in target
    if name == "matches":
        try:
            return re.search(args[0], target) is not None
        except re.error as e:
            raise EvalError(f"invalid regular expression: {e}") from None
    raise _no_overload(name, target, *args)


def _truth(v, op):
    if not isinstance(v, bool):
        raise _no_overload(op, v)
    return v


def _logic(op, left, right, env):
    """&& and || are commutative in CEL: an error on one side is absorbed when the other side
    decides the result."""
    short = op == "||"  # the value that decides the result
    errors = []
    for side in (left, right):
        try:
            value = _truth(_eval(side, env), "_&&_" if op == "&&" else "_||_")
        except EvalError as e:
            errors.append(e)
            continue
        if value == short:
            return short
    if errors:
        raise errors[0]
    return not short


def _macro(name, target, var, body, env):
    if isinstance(target, dict):
        items = list(target.keys())
    elif isinstance(target, list):
        items = target
    else:
        raise _no_overload(name, target)
    if name in ("all", "exists"):
        decisive = name == "exists"  # exists stops at true, all stops at false
        error = None
        for item in items:
            try:
                value = _truth(_eval(body, {**env, var: item}), name)
            except EvalError as e:
                error = error or e
                continue
            if value == decisive:
                return decisive
        if error:
            raise error
        return not decisive
    if name == "exists_one":
        count = sum(1 for item in items if _truth(_eval(body, {**env, var: item}), name))
        return count == 1
    if name == "map":
        return [_eval(body, {**env, var: item}) for item in items]
    if name == "filter":
        return [item for item in items if _truth(_eval(body, {**env, var: item}), name)]
    raise _no_overload(name, target)


def _eval(node, env):
    tag = node[0]
    if tag == "lit":
        return node[1]
    if tag == "var":
        return env[node[1]]
    if tag == "select":
        return _select(_eval(node[1], env), node[2])
    if tag == "has":
        obj = _eval(node[1], env)
        if isinstance(obj, dict):
            return node[2] in obj
        raise EvalError(f"invalid type for field selection: {_type_name(obj)}")
    if tag == "index":
        return _index(_eval(node[1], env), _eval(node[2], env))
    if tag == "call":
        target = _eval(node[2], env) if node[2] is not None else _eval(node[3][0], env)
        args = [_eval(a, env) for a in node[3]] if node[2] is not None else []
        return _call(node[1], target, args)
    if tag == "macro":
        return _macro(node[1], _eval(node[2], env), node[3], node[4], env)
    if tag == "list":
        return [_eval(item, env) for item in node[1]]
    if tag == "map":
        out = {}
        for k, v in node[1]:
            key = _eval(k, env)
            if key in out:
                raise EvalError(f"Failed with repeated key: {key}")
            out[key] = _eval(v, env)
        return out
    if tag == "unary":
        value = _eval(node[2], env)
        if node[1] == "!":
            return not _truth(value, "!_")
        if _is_num(value):
            if isinstance(value, UInt):
                raise _no_overload("-_", value)
            return _check_int(-value) if isinstance(value, int) else -value
        raise _no_overload("-_", value)
    if tag == "cond":
        return _eval(node[2] if _truth(_eval(node[1], env), "_?_:_") else node[3], env)
    if tag == "binary":
        op = node[1]
        if op in ("&&", "||"):
            return _logic(op, node[2], node[3], env)
        a, b = _eval(node[2], env), _eval(node[3], env)
        if op == "==":
            return _equal(a, b)
        if op == "!=":
            return not _equal(a, b)
        if op in ("<", "<=", ">", ">="):
            return _compare(op, a, b)
        if op == "in":
            if isinstance(b, list):
                return any(_equal(a, item) for item in b)
            if isinstance(b, dict):
                return a in b
            raise _no_overload("@in", a, b)
        return _arith(op, a, b)
    raise EvalError(f"unknown node {tag}")
