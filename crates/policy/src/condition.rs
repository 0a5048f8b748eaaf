//! Rule conditions (`when:`): CEL expressions (the `cel` crate), compiled and
//! checked at load, evaluated on the cached identity.
//!
//! Variables: `claims` (the verified claims), `header` (the token's JOSE header),
//! `request` (`method`, `host`, `path` as the canonical reader read them, and
//! `headers`, lower-case names, repeated values joined with `, `) and `now`
//! (integer seconds). An expression naming anything else is refused at load, as is
//! one that does not parse. The `cel` crate has no type checker: a type error
//! shows at run time, where it denies. Only `true` allows.
//!
//! `claims` and `header` are converted to CEL values once, when the token
//! verifies, and cached with it ([`TokenVars`]); a request builds only `request`,
//! borrowing its strings, and only when the expression reads it.

mod fast;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, Program, Value as CelValue};
use http::HeaderMap;
use serde_json::{Map, Value};

/// The variables an expression may name.
pub const VARIABLES: [&str; 4] = ["claims", "header", "request", "now"];

/// A compiled `when:` expression.
#[derive(Clone)]
pub struct Condition {
    inner: Arc<Compiled>,
}

struct Compiled {
    source: String,
    program: Program,
    env: Arc<Env>,
    reads_request: bool,
    reads_headers: bool,
}

/// Why an expression was refused at load. `line` and `column` are 1-based, in
/// the expression.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[error("at {line}:{column} of the expression: {message}")]
pub struct InvalidCondition {
    /// Line in the expression.
    pub line: usize,
    /// Column in that line.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// The token's side of the variables: every claim and the header, kept when
/// it verified (and cached with it). Most expressions are evaluated on them as
/// they are; the others on CEL values converted once, at their first use.
pub struct TokenVars {
    claims: Map<String, Value>,
    header: Map<String, Value>,
    converted: OnceLock<(Box<dyn Val>, Box<dyn Val>)>,
    bytes: usize,
}

/// The request's side of the variables.
#[derive(Clone, Copy, Debug)]
pub struct RequestVars<'a> {
    /// Method, upper case.
    pub method: &'a str,
    /// Host, canonical.
    pub host: &'a str,
    /// Path, canonical (without the query).
    pub path: &'a str,
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// Seconds since the epoch.
    pub now: i64,
}

impl Condition {
    /// Compiles `source` and checks the variables it names.
    ///
    /// # Errors
    /// A syntax error, a name other than [`VARIABLES`] (or a comprehension's own),
    /// a message or struct construction, with its position in `source`.
    pub fn compile(source: &str) -> Result<Condition, InvalidCondition> {
        let env = Arc::new(Env::stdlib());
        // The parser is a dependency's: should it panic on some input, that is a
        // refused expression, not a crashed reload.
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| env.compile(source)))
            .map_err(|_| InvalidCondition {
                line: 1,
                column: 1,
                message: "the CEL parser failed on this expression".to_owned(),
            })?;
        let program = parsed.map_err(|e| {
            let first = e.errors.first();
            let (line, column) = first.map_or((1, 1), |e| {
                (
                    usize::try_from(e.pos.0).unwrap_or(1).max(1),
                    usize::try_from(e.pos.1).unwrap_or(1).max(1),
                )
            });
            InvalidCondition {
                line,
                column,
                message: first.map_or_else(|| "does not parse".to_owned(), |e| e.msg.clone()),
            }
        })?;
        let mut found = Vec::new();
        free_names(program.expression(), &mut Vec::new(), &mut found);
        let at = |id: u64, message: String| {
            let offset = program
                .source_info()
                .offset_for(id)
                .map_or(0, |(start, _)| start as usize);
            let (line, column) = line_column(source, offset);
            InvalidCondition {
                line,
                column,
                message,
            }
        };
        let mut reads_request = false;
        for (name, id) in &found {
            match name {
                Name::Variable(v) if VARIABLES.contains(&v.as_str()) => {
                    reads_request |= v == "request";
                }
                Name::Variable(v) => {
                    return Err(at(
                        *id,
                        format!(
                            "{v:?} is not a variable here (only {})",
                            VARIABLES.join(", ")
                        ),
                    ));
                }
                Name::Struct(t) => {
                    return Err(at(*id, format!("{t:?}: no message types are declared")));
                }
            }
        }
        if let Some(kind) = non_boolean(program.expression()) {
            return Err(at(
                program.expression().id,
                format!("the condition is {kind}, never a boolean"),
            ));
        }
        // `request.headers` (or `request["headers"]`): the headers are built only then.
        let reads_headers = reads_request && source.contains("headers");
        Ok(Condition {
            inner: Arc::new(Compiled {
                source: source.to_owned(),
                program,
                env,
                reads_request,
                reads_headers,
            }),
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Evaluates with the token's variables (`None`: no token, `claims` and
    /// `header` are empty maps) and the request's.
    ///
    /// # Errors
    /// The expression failed at run time, or its value is not a boolean: the
    /// reason, for logs.
    pub fn evaluate(
        &self,
        token: Option<&TokenVars>,
        request: &RequestVars<'_>,
    ) -> Result<bool, String> {
        self.evaluate_with(token, request, false)
    }

    /// As [`Condition::evaluate`]; `force_interpreter` skips the direct evaluator
    /// (for the differential tests).
    pub(crate) fn evaluate_with(
        &self,
        token: Option<&TokenVars>,
        request: &RequestVars<'_>,
        force_interpreter: bool,
    ) -> Result<bool, String> {
        let c = &*self.inner;
        let empty;
        let token = match token {
            Some(t) => t,
            None => {
                empty = TokenVars::empty();
                &empty
            }
        };
        if !force_interpreter {
            let mut scope = fast::Scope {
                claims: &token.claims,
                header: &token.header,
                request,
                bound: Vec::new(),
            };
            match fast::eval(c.program.expression(), &mut scope) {
                Ok(fast::V::Bool(b)) => return Ok(b),
                Ok(other) => return Err(format!("the condition is {other:?}, not a boolean")),
                Err(fast::Fail::Error) => {
                    return Err("a key or header the condition reads is missing".to_owned());
                }
                Err(fast::Fail::Unsupported) => {}
            }
        }
        let request_val = c
            .reads_request
            .then(|| request_map(request, c.reads_headers));
        let resolver = Resolver {
            token,
            request: request_val.as_ref().map(|m| m as &dyn Val),
            now: CelInt::from(request.now),
        };
        let mut ctx = Context::with_env(Arc::clone(&c.env));
        ctx.set_variable_resolver(&resolver);
        // Claims and headers are the client's: a panic in the interpreter denies
        // like any other failure.
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.program.execute(&ctx)))
                .map_err(|_| "the CEL interpreter failed".to_owned())?;
        match result {
            Ok(CelValue::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "the condition is {:?}, not a boolean",
                other.type_of()
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition")
            .field(&self.inner.source)
            .finish()
    }
}

impl TokenVars {
    /// Keeps a token's claims and header.
    pub fn new(claims: &Map<String, Value>, header: &Map<String, Value>) -> TokenVars {
        let bytes = json_bytes(claims) + json_bytes(header);
        TokenVars {
            claims: claims.clone(),
            header: header.clone(),
            converted: OnceLock::new(),
            bytes,
        }
    }

    fn converted(&self) -> &(Box<dyn Val>, Box<dyn Val>) {
        self.converted
            .get_or_init(|| (object_val(&self.claims), object_val(&self.header)))
    }

    fn empty() -> TokenVars {
        TokenVars::new(&Map::new(), &Map::new())
    }

    /// About how many bytes of memory it holds (for the token cache's bound).
    pub fn estimated_bytes(&self) -> usize {
        self.bytes
    }
}

impl fmt::Debug for TokenVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVars").finish_non_exhaustive()
    }
}

// === impl Resolver ===

struct Resolver<'a> {
    token: &'a TokenVars,
    request: Option<&'a dyn Val>,
    now: CelInt,
}

impl VariableResolver for Resolver<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        match variable {
            "claims" => Some(CowVal::Borrowed(self.token.converted().0.as_ref())),
            "header" => Some(CowVal::Borrowed(self.token.converted().1.as_ref())),
            "request" => self.request.map(CowVal::Borrowed),
            "now" => Some(CowVal::Borrowed(&self.now)),
            _ => None,
        }
    }
}

/// A name an expression uses that it does not bind itself.
enum Name {
    Struct(String),
    Variable(String),
}

/// Collects the identifiers `e` reads that no enclosing comprehension binds.
fn free_names<'e>(e: &'e IdedExpr, bound: &mut Vec<&'e str>, out: &mut Vec<(Name, u64)>) {
    match &e.expr {
        Expr::Unspecified | Expr::Literal(_) => {}
        Expr::Ident(name) => {
            if !name.starts_with('@') && !bound.contains(&name.as_str()) {
                out.push((Name::Variable(name.clone()), e.id));
            }
        }
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                free_names(target, bound, out);
            }
            for arg in &call.args {
                free_names(arg, bound, out);
            }
        }
        Expr::Comprehension(c) => {
            free_names(&c.iter_range, bound, out);
            free_names(&c.accu_init, bound, out);
            let depth = bound.len();
            bound.push(&c.iter_var);
            if let Some(v) = &c.iter_var2 {
                bound.push(v);
            }
            bound.push(&c.accu_var);
            free_names(&c.loop_cond, bound, out);
            free_names(&c.loop_step, bound, out);
            free_names(&c.result, bound, out);
            bound.truncate(depth);
        }
        Expr::List(list) => {
            for item in &list.elements {
                free_names(item, bound, out);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                if let EntryExpr::MapEntry(m) = &entry.expr {
                    free_names(&m.key, bound, out);
                    free_names(&m.value, bound, out);
                }
            }
        }
        Expr::Select(select) => free_names(&select.operand, bound, out),
        Expr::Struct(s) => out.push((Name::Struct(s.type_name.clone()), e.id)),
    }
}

/// What the expression surely is when it can be no boolean: a literal, list or
/// map, or arithmetic (the little type checking that needs no declarations).
fn non_boolean(e: &IdedExpr) -> Option<&'static str> {
    use cel::common::ast::{LiteralValue, operators};
    match &e.expr {
        Expr::Literal(LiteralValue::Boolean(_)) => None,
        Expr::Literal(LiteralValue::Null) => Some("null"),
        Expr::Literal(_) => Some("a literal that is not a boolean"),
        Expr::List(_) => Some("a list"),
        Expr::Map(_) => Some("a map"),
        Expr::Call(c) => match c.func_name.as_str() {
            operators::ADD
            | operators::SUBSTRACT
            | operators::MULTIPLY
            | operators::DIVIDE
            | operators::MODULO
            | operators::NEGATE => Some("arithmetic"),
            "size" => Some("a size"),
            _ => None,
        },
        _ => None,
    }
}

/// 1-based line and column of the character at `offset` (in characters).
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for c in source.chars().take(offset) {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

fn request_map<'a>(r: &RequestVars<'a>, with_headers: bool) -> CelMap<'a> {
    let mut m: HashMap<CelMapKey<'a>, Box<dyn Val + 'a>> = HashMap::with_capacity(4);
    m.insert(
        CelMapKey::from("method"),
        Box::new(CelString::from(r.method)),
    );
    m.insert(CelMapKey::from("host"), Box::new(CelString::from(r.host)));
    m.insert(CelMapKey::from("path"), Box::new(CelString::from(r.path)));
    if with_headers {
        let mut headers: HashMap<CelMapKey<'a>, Box<dyn Val + 'a>> =
            HashMap::with_capacity(r.headers.keys_len());
        for name in r.headers.keys() {
            let mut values = r.headers.get_all(name).iter().map(|v| v.to_str());
            // A value that is not visible ASCII is left out (never guessed at).
            let value = match (values.next(), values.next()) {
                (Some(Ok(one)), None) => CelString::from(one),
                (Some(Ok(first)), Some(second)) => {
                    let mut joined = first.to_owned();
                    for v in std::iter::once(second).chain(values).flatten() {
                        joined.push_str(", ");
                        joined.push_str(v);
                    }
                    CelString::from(joined)
                }
                _ => continue,
            };
            headers.insert(CelMapKey::from(name.as_str()), Box::new(value));
        }
        m.insert(CelMapKey::from("headers"), Box::new(CelMap::from(headers)));
    }
    CelMap::from(m)
}

fn object_val(members: &Map<String, Value>) -> Box<dyn Val> {
    let m: HashMap<CelMapKey<'static>, Box<dyn Val>> = members
        .iter()
        .map(|(k, v)| (CelMapKey::from(k.clone()), json_val(v)))
        .collect();
    Box::new(CelMap::from(m))
}

/// JSON to CEL: integers as `int` (`uint` above i64), other numbers as `double`.
fn json_val(v: &Value) -> Box<dyn Val> {
    match v {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Box::new(CelInt::from(i)),
            (None, Some(u)) => Box::new(CelUInt::from(u)),
            _ => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        Value::String(s) => Box::new(CelString::from(s.clone())),
        Value::Array(items) => Box::new(CelList::from(
            items.iter().map(json_val).collect::<Vec<_>>(),
        )),
        Value::Object(members) => object_val(members),
    }
}

/// Rough heap bytes of the converted values: three times their compact JSON.
fn json_bytes(members: &Map<String, Value>) -> usize {
    members
        .iter()
        .map(|(k, v)| k.len() + v.to_string().len())
        .sum::<usize>()
        .saturating_mul(3)
        .saturating_add(64)
}

#[cfg(test)]
mod tests;
