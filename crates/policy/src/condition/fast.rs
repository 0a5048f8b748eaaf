//! A direct evaluator for the common part of CEL, over the token's JSON and the
//! request as they are (no conversion): literals, `claims`/`header`/`request`/`now`,
//! field and index access, `has()`, `==`/`!=`/`<`/`<=`/`>`/`>=` between values of
//! one kind, `&&`, `||`, `!`, `? :`, `in`, `size`, `startsWith`, `endsWith`,
//! `contains`, `int` `+`/`-`, and `exists`/`all` over lists.
//!
//! It answers only where its answer is certainly the interpreter's: anything
//! else, an error on the left of `&&`/`||`, a comparison across kinds, an
//! overflow..., is [`Fail::Unsupported`], and the caller runs the `cel`
//! interpreter instead. Differential tests (`condition/tests.rs`) hold the two
//! to the same answers.

use cel::common::ast::{CallExpr, ComprehensionExpr, Expr, IdedExpr, LiteralValue, operators};
use serde_json::{Map, Value};

use super::RequestVars;

/// A value during evaluation, borrowed from the token, the request or the expression.
#[derive(Clone, Copy, Debug)]
pub(super) enum V<'a> {
    Arr(&'a [Value]),
    Bool(bool),
    Double(f64),
    Headers,
    Int(i64),
    Null,
    Obj(&'a Map<String, Value>),
    Request,
    Str(&'a str),
    Uint(u64),
}

/// Why no value.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum Fail {
    /// A CEL run-time error (a missing key, a wrong type where the answer is sure).
    Error,
    /// Not decided here: the interpreter decides.
    Unsupported,
}

type R<'a> = Result<V<'a>, Fail>;

pub(super) struct Scope<'a> {
    pub(super) claims: &'a Map<String, Value>,
    pub(super) header: &'a Map<String, Value>,
    pub(super) request: &'a RequestVars<'a>,
    /// Comprehension variables, innermost last.
    pub(super) bound: Vec<(&'a str, V<'a>)>,
}

/// JSON as a value: the same kinds the interpreter's conversion gives.
fn json<'a>(v: &'a Value) -> V<'a> {
    match v {
        Value::Null => V::Null,
        Value::Bool(b) => V::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => V::Int(i),
            (None, Some(u)) => V::Uint(u),
            _ => n.as_f64().map_or(V::Null, V::Double),
        },
        Value::String(s) => V::Str(s),
        Value::Array(items) => V::Arr(items),
        Value::Object(m) => V::Obj(m),
    }
}

pub(super) fn eval<'a>(e: &'a IdedExpr, s: &mut Scope<'a>) -> R<'a> {
    match &e.expr {
        Expr::Literal(l) => match l {
            LiteralValue::Boolean(b) => Ok(V::Bool(*b.inner())),
            LiteralValue::Int(i) => Ok(V::Int(*i.inner())),
            LiteralValue::UInt(u) => Ok(V::Uint(*u.inner())),
            LiteralValue::Double(d) => Ok(V::Double(*d.inner())),
            LiteralValue::String(t) => Ok(V::Str(t.inner())),
            LiteralValue::Null => Ok(V::Null),
            LiteralValue::Bytes(_) => Err(Fail::Unsupported),
        },
        Expr::Ident(name) => {
            if let Some((_, v)) = s.bound.iter().rev().find(|(n, _)| n == name) {
                return Ok(*v);
            }
            match name.as_str() {
                "claims" => Ok(V::Obj(s.claims)),
                "header" => Ok(V::Obj(s.header)),
                "request" => Ok(V::Request),
                "now" => Ok(V::Int(s.request.now)),
                _ => Err(Fail::Unsupported),
            }
        }
        Expr::Select(sel) => {
            let target = eval(&sel.operand, s)?;
            let found = field(target, &sel.field, s.request)?;
            if sel.test {
                Ok(V::Bool(found.is_some()))
            } else {
                found.ok_or(Fail::Error)
            }
        }
        Expr::Call(call) => self::call(call, s),
        Expr::Comprehension(c) => comprehension(c, s),
        _ => Err(Fail::Unsupported),
    }
}

/// `target.name`: `Ok(None)` when the map has no such key.
fn field<'a>(target: V<'a>, name: &str, r: &'a RequestVars<'a>) -> Result<Option<V<'a>>, Fail> {
    match target {
        V::Obj(m) => Ok(m.get(name).map(json)),
        V::Request => Ok(match name {
            "method" => Some(V::Str(r.method)),
            "host" => Some(V::Str(r.host)),
            "path" => Some(V::Str(r.path)),
            "headers" => Some(V::Headers),
            _ => None,
        }),
        V::Headers => header(r, name),
        _ => Err(Fail::Unsupported),
    }
}

fn header<'a>(r: &'a RequestVars<'a>, name: &str) -> Result<Option<V<'a>>, Fail> {
    // Header names are lower case in the map; another spelling is no key there.
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Ok(None);
    }
    let mut values = r.headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        // Not visible ASCII: the interpreter's map leaves it out.
        (Some(v), None) => Ok(v.to_str().ok().map(V::Str)),
        // Repeated: joined in the interpreter's map (an allocation): its to decide.
        (Some(_), Some(_)) => Err(Fail::Unsupported),
    }
}

/// An error is not the last word here: the interpreter decides.
fn sure(r: R<'_>) -> R<'_> {
    r.map_err(|_| Fail::Unsupported)
}

fn bool_of(v: R<'_>) -> Result<bool, Fail> {
    match v? {
        V::Bool(b) => Ok(b),
        _ => Err(Fail::Unsupported),
    }
}

fn call<'a>(c: &'a CallExpr, s: &mut Scope<'a>) -> R<'a> {
    let args = &c.args;
    match (c.func_name.as_str(), &c.target, args.len()) {
        (operators::LOGICAL_AND, None, 2) => {
            // Only a sure left side decides: `false && x` is false whatever x is,
            // and an error on the left may be absorbed by a false on the right.
            if !bool_of(sure(eval(&args[0], s)))? {
                return Ok(V::Bool(false));
            }
            Ok(V::Bool(bool_of(eval(&args[1], s))?))
        }
        (operators::LOGICAL_OR, None, 2) => {
            if bool_of(sure(eval(&args[0], s)))? {
                return Ok(V::Bool(true));
            }
            Ok(V::Bool(bool_of(eval(&args[1], s))?))
        }
        (operators::LOGICAL_NOT, None, 1) => Ok(V::Bool(!bool_of(eval(&args[0], s))?)),
        (operators::CONDITIONAL, None, 3) => {
            if bool_of(eval(&args[0], s))? {
                eval(&args[1], s)
            } else {
                eval(&args[2], s)
            }
        }
        (operators::EQUALS, None, 2) => Ok(V::Bool(equal(eval(&args[0], s)?, eval(&args[1], s)?)?)),
        (operators::NOT_EQUALS, None, 2) => {
            Ok(V::Bool(!equal(eval(&args[0], s)?, eval(&args[1], s)?)?))
        }
        (
            op @ (operators::LESS
            | operators::LESS_EQUALS
            | operators::GREATER
            | operators::GREATER_EQUALS),
            None,
            2,
        ) => {
            let ord = order(eval(&args[0], s)?, eval(&args[1], s)?)?;
            Ok(V::Bool(match op {
                operators::LESS => ord.is_lt(),
                operators::LESS_EQUALS => ord.is_le(),
                operators::GREATER => ord.is_gt(),
                _ => ord.is_ge(),
            }))
        }
        (op @ (operators::ADD | operators::SUBSTRACT), None, 2) => {
            match (eval(&args[0], s)?, eval(&args[1], s)?) {
                (V::Int(a), V::Int(b)) => {
                    let r = if op == operators::ADD {
                        a.checked_add(b)
                    } else {
                        a.checked_sub(b)
                    };
                    r.map(V::Int).ok_or(Fail::Unsupported)
                }
                _ => Err(Fail::Unsupported),
            }
        }
        (operators::INDEX, None, 2) => {
            let target = eval(&args[0], s)?;
            match (target, eval(&args[1], s)?) {
                (V::Obj(_) | V::Request | V::Headers, V::Str(k)) => {
                    field(target, k, s.request)?.ok_or(Fail::Error)
                }
                (V::Arr(items), V::Int(i)) => usize::try_from(i)
                    .ok()
                    .and_then(|i| items.get(i))
                    .map(json)
                    .ok_or(Fail::Unsupported),
                _ => Err(Fail::Unsupported),
            }
        }
        (operators::IN, None, 2) => {
            let needle = eval(&args[0], s)?;
            match (needle, eval(&args[1], s)?) {
                (_, V::Arr(items)) => {
                    for item in items {
                        if equal(needle, json(item))? {
                            return Ok(V::Bool(true));
                        }
                    }
                    Ok(V::Bool(false))
                }
                (V::Str(k), target @ (V::Obj(_) | V::Headers)) => {
                    Ok(V::Bool(field(target, k, s.request)?.is_some()))
                }
                _ => Err(Fail::Unsupported),
            }
        }
        ("size", None, 1) => size(eval(&args[0], s)?),
        ("size", Some(t), 0) => size(eval(t, s)?),
        (f @ ("startsWith" | "endsWith" | "contains"), Some(t), 1) => {
            match (eval(t, s)?, eval(&args[0], s)?) {
                (V::Str(a), V::Str(b)) => Ok(V::Bool(match f {
                    "startsWith" => a.starts_with(b),
                    "endsWith" => a.ends_with(b),
                    _ => a.contains(b),
                })),
                _ => Err(Fail::Unsupported),
            }
        }
        _ => Err(Fail::Unsupported),
    }
}

fn size(v: V<'_>) -> R<'_> {
    let n = match v {
        V::Str(t) => t.chars().count(),
        V::Arr(items) => items.len(),
        V::Obj(m) => m.len(),
        _ => return Err(Fail::Unsupported),
    };
    i64::try_from(n).map(V::Int).map_err(|_| Fail::Unsupported)
}

/// Equality of two values of one kind; across kinds (or for lists and maps) the
/// interpreter decides.
fn equal(a: V<'_>, b: V<'_>) -> Result<bool, Fail> {
    match (a, b) {
        (V::Str(x), V::Str(y)) => Ok(x == y),
        (V::Int(x), V::Int(y)) => Ok(x == y),
        (V::Uint(x), V::Uint(y)) => Ok(x == y),
        (V::Double(x), V::Double(y)) => Ok(x == y),
        (V::Bool(x), V::Bool(y)) => Ok(x == y),
        (V::Null, V::Null) => Ok(true),
        _ => Err(Fail::Unsupported),
    }
}

fn order(a: V<'_>, b: V<'_>) -> Result<std::cmp::Ordering, Fail> {
    match (a, b) {
        (V::Str(x), V::Str(y)) => Ok(x.cmp(y)),
        (V::Int(x), V::Int(y)) => Ok(x.cmp(&y)),
        (V::Uint(x), V::Uint(y)) => Ok(x.cmp(&y)),
        (V::Double(x), V::Double(y)) => x.partial_cmp(&y).ok_or(Fail::Unsupported),
        _ => Err(Fail::Unsupported),
    }
}

/// `list.exists(x, p)` and `list.all(x, p)`, recognized by the shape the parser's
/// macros give them; any other comprehension is the interpreter's.
fn comprehension<'a>(c: &'a ComprehensionExpr, s: &mut Scope<'a>) -> R<'a> {
    let init = match &c.accu_init.expr {
        Expr::Literal(LiteralValue::Boolean(b)) => *b.inner(),
        _ => return Err(Fail::Unsupported),
    };
    let Expr::Call(step) = &c.loop_step.expr else {
        return Err(Fail::Unsupported);
    };
    let want_op = if init {
        operators::LOGICAL_AND
    } else {
        operators::LOGICAL_OR
    };
    let accu_first =
        matches!(step.args.first().map(|a| &a.expr), Some(Expr::Ident(n)) if *n == c.accu_var);
    let result_is_accu = matches!(&c.result.expr, Expr::Ident(n) if *n == c.accu_var);
    if step.func_name != want_op
        || step.target.is_some()
        || step.args.len() != 2
        || !accu_first
        || !result_is_accu
        || c.iter_var2.is_some()
    {
        return Err(Fail::Unsupported);
    }
    let V::Arr(items) = eval(&c.iter_range, s)? else {
        return Err(Fail::Unsupported);
    };
    let predicate = &step.args[1];
    for item in items {
        s.bound.push((c.iter_var.as_str(), json(item)));
        // An error for one element may be absorbed by another's answer.
        let r = bool_of(sure(eval(predicate, s)));
        s.bound.pop();
        // exists: a true ends it; all: a false does.
        if r? != init {
            return Ok(V::Bool(!init));
        }
    }
    Ok(V::Bool(init))
}
