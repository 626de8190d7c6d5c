//! Evaluation of a parsed [`Expr`] with Ruby's semantics, reading only the [`Inputs`].
//!
//! Ruby evaluates a method's arguments before calling it (so `ENV.fetch('A', ENV.fetch('B'))`
//! fails when `B` is unset even if `A` is set) and `||` from the left, stopping at the first
//! operand that is neither `nil` nor `false`. `use_default` and `use_nil` raise in Fluentd; here
//! they stop evaluation the same way ([`Stop::Unset`]).

use super::syntax::{Expr, Piece};
use super::{Inputs, Problem};
use crate::tree::Unset;

/// A Ruby value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Nil,
    Bool(bool),
    /// Decimal digits, as [`Expr::Int`].
    Int(String),
    Float(f64),
    Str(String),
}

impl Value {
    /// Ruby's truth: only `nil` and `false` are false (an empty string is true).
    pub(crate) fn truthy(&self) -> bool {
        !matches!(self, Value::Nil | Value::Bool(false))
    }

    /// What `"#{value}"` gives: Ruby's `to_s`.
    pub(crate) fn into_text(self) -> String {
        match self {
            Value::Nil => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Int(digits) => digits,
            Value::Float(f) => float_to_s(f),
            Value::Str(s) => s,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(true) => "true",
            Value::Bool(false) => "false",
            Value::Int(_) => "an Integer",
            Value::Float(_) => "a Float",
            Value::Str(_) => "a String",
        }
    }
}

/// Why evaluation stopped without a value.
#[derive(Debug)]
pub(crate) enum Stop {
    /// `use_default` or `use_nil` was reached.
    Unset(Unset),
    /// Ruby would raise.
    Fail(Problem),
}

/// Evaluates `e`. Recursion follows the expression's nesting, which the parser bounds.
pub(crate) fn eval(e: &Expr, inputs: &Inputs<'_>) -> Result<Value, Stop> {
    let fail = |p: Problem| Stop::Fail(p);
    Ok(match e {
        Expr::Nil => Value::Nil,
        Expr::Bool(b) => Value::Bool(*b),
        Expr::Int(digits) => Value::Int(digits.clone()),
        Expr::Float(f) => Value::Float(*f),
        Expr::Str(pieces) => {
            let mut s = String::new();
            for piece in pieces {
                match piece {
                    Piece::Text(t) => s.push_str(t),
                    Piece::Code(e) => s.push_str(&eval(e, inputs)?.into_text()),
                }
            }
            Value::Str(s)
        }
        Expr::Env(name) => inputs.env(name).map_or(Value::Nil, Value::Str),
        Expr::Fetch { name, default } => {
            let default = match default {
                Some(d) => Some(eval(d, inputs)?),
                None => None,
            };
            match (inputs.env(name), default) {
                (Some(v), _) => Value::Str(v),
                (None, Some(d)) => d,
                (None, None) => return Err(fail(Problem::FetchUnset(name.clone()))),
            }
        }
        Expr::Join(args) => {
            let mut parts = Vec::with_capacity(args.len());
            for a in args {
                parts.push(eval(a, inputs)?);
            }
            Value::Str(file_join(parts).map_err(fail)?)
        }
        Expr::Hostname => Value::Str(inputs.hostname().map_err(fail)?),
        Expr::Pwd => Value::Str(inputs.pwd().map_err(fail)?),
        Expr::Pid => Value::Int(inputs.pid().map_err(fail)?),
        Expr::WorkerId => Value::Str("0".to_string()),
        Expr::Unset(u) => return Err(Stop::Unset(*u)),
        Expr::Or(chain) => {
            let mut last = Value::Nil;
            for operand in chain {
                last = eval(operand, inputs)?;
                if last.truthy() {
                    break;
                }
            }
            last
        }
    })
}

/// Ruby's `File.join` over strings: one `/` between parts unless a part already supplies it.
/// A part that starts with `/` drops the trailing `/`s of what precedes it; a part that does not
/// gets a `/` unless what precedes ends with one (an empty first part gives a leading `/`).
fn file_join(parts: Vec<Value>) -> Result<String, Problem> {
    let mut out = String::new();
    for (i, part) in parts.into_iter().enumerate() {
        let index = i + 1;
        let Value::Str(part) = part else {
            let found = part.kind();
            return Err(Problem::JoinArgument { index, found });
        };
        if part.contains('\0') {
            return Err(Problem::JoinNul(index));
        }
        if i > 0 {
            let kept = out.trim_end_matches('/').len();
            if part.starts_with('/') {
                out.truncate(kept);
            } else if kept == out.len() {
                out.push('/');
            }
        }
        out.push_str(&part);
    }
    Ok(out)
}

/// Ruby's `Float#to_s`: the shortest digits that read back as `f`, in fixed notation for
/// magnitudes from 1e-4 up to 1e16 (a 16-digit integer part only when a fraction follows),
/// otherwise as `d.ddde+XX`; always with a fraction (`1.0`), `Infinity`, `NaN`.
fn float_to_s(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f.is_infinite() {
        return format!("{sign}Infinity");
    }
    if f == 0.0 {
        return format!("{sign}0.0");
    }
    let (digits, exp) = sci_digits(&format!("{:e}", f.abs()));
    let digits = tie_to_even(digits, exp, f.abs());
    let decpt = exp + 1;
    let n = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let body = if decpt > 0 && (decpt <= 15 || (decpt == 16 && n > decpt)) {
        let (int, frac) = digits.split_at(decpt.min(n) as usize);
        let zeros = "0".repeat((decpt - decpt.min(n)) as usize);
        let frac = if frac.is_empty() { "0" } else { frac };
        format!("{int}{zeros}.{frac}")
    } else if decpt <= 0 && decpt > -4 {
        format!("0.{}{digits}", "0".repeat(decpt.unsigned_abs() as usize))
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{first}.{rest}e{:+03}", decpt - 1)
    };
    format!("{sign}{body}")
}

/// The significant digits and the exponent of Rust's `{:e}` text (`1.25e-3` → `125`, -3).
fn sci_digits(sci: &str) -> (String, i32) {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let digits = mantissa.chars().filter(|c| *c != '.').collect();
    (digits, exp.parse().unwrap_or(0))
}

/// When `f` lies exactly halfway between two shortest digit strings, Rust writes the larger
/// and Ruby the one ending in an even digit: `2240786369463193.25` is `...193.3` in Rust and
/// `...193.2` in Ruby. Returns Ruby's choice.
fn tie_to_even(digits: String, exp: i32, f: f64) -> String {
    let Some(last) = digits.bytes().last().filter(|d| (d - b'0') % 2 == 1) else {
        return digits;
    };
    let mut lower = digits[..digits.len() - 1].to_string();
    lower.push(char::from(last - 1));
    let shift = i32::try_from(lower.len()).unwrap_or(i32::MAX) - 1;
    let reads_back = format!("{lower}e{}", exp.saturating_sub(shift)).parse::<f64>() == Ok(f);
    if !reads_back {
        return digits;
    }
    // The exact value of a double has at most 767 significant digits.
    let (exact, _) = sci_digits(&format!("{:.800e}", f));
    if exact.trim_end_matches('0') == format!("{lower}5") {
        lower
    } else {
        digits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(parts: &[&str]) -> String {
        file_join(parts.iter().map(|p| Value::Str(p.to_string())).collect()).unwrap()
    }

    #[test]
    fn file_join_follows_ruby() {
        // Each expectation is what Ruby 3.1's File.join gives.
        let cases: &[(&[&str], &str)] = &[
            (&["/var/log/", "", "x.pos"], "/var/log/x.pos"),
            (&["/var/log", "x.pos"], "/var/log/x.pos"),
            (&["", "x"], "/x"),
            (&["a", ""], "a/"),
            (&["a//", "//b"], "a//b"),
            (&["a//", "b"], "a//b"),
            (&["/", "x"], "/x"),
            (&["a", "/", "b"], "a/b"),
            (&["", ""], "/"),
            (&[""], ""),
            (&[], ""),
        ];
        for (parts, want) in cases {
            assert_eq!(join(parts), *want, "File.join{parts:?}");
        }
    }

    #[test]
    fn file_join_refuses_what_ruby_raises_on() {
        let err = file_join(vec![Value::Str("a".into()), Value::Nil]).unwrap_err();
        assert_eq!(
            err,
            Problem::JoinArgument {
                index: 2,
                found: "nil"
            }
        );
        let err = file_join(vec![Value::Str("a\0".into())]).unwrap_err();
        assert_eq!(err, Problem::JoinNul(1));
    }

    #[test]
    fn floats_print_as_ruby_to_s() {
        // Each expectation is what Ruby 3.1's Float#to_s gives.
        let cases = [
            (1.0, "1.0"),
            (-1.5, "-1.5"),
            (1000.5, "1000.5"),
            (2.5e3, "2500.0"),
            (1e14, "100000000000000.0"),
            (1e15, "1.0e+15"),
            (1.5e15, "1.5e+15"),
            (1000000000000001.0, "1.000000000000001e+15"),
            (1234567890123456.8, "1234567890123456.8"),
            (12345678901234567.0, "1.2345678901234568e+16"),
            (1e16, "1.0e+16"),
            (0.0001, "0.0001"),
            (0.00015, "0.00015"),
            (1e-5, "1.0e-05"),
            (1.23e-5, "1.23e-05"),
            (1e100, "1.0e+100"),
            // Exactly halfway between two shortest texts: Ruby takes the even digit.
            (2240786369463193.0 + 0.25, "2240786369463193.2"),
            (624933723556.0 + 0.90625, "624933723556.9062"),
            (0.1 + 0.2, "0.30000000000000004"),
            (5e-324, "5.0e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (f, want) in cases {
            assert_eq!(float_to_s(f), want, "{f:e}");
        }
    }

    #[test]
    fn only_nil_and_false_are_falsy() {
        assert!(!Value::Nil.truthy());
        assert!(!Value::Bool(false).truthy());
        assert!(Value::Str(String::new()).truthy());
        assert!(Value::Int("0".into()).truthy());
        assert_eq!(Value::Nil.into_text(), "");
        assert_eq!(Value::Bool(true).into_text(), "true");
    }
}
