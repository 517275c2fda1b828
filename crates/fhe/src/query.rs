//! The query language: `COUNT | SUM attr | MEAN attr [WHERE clause (AND clause)*]`.
//!
//! A clause is `attr op literal` with `op` one of `= == != < <= > >=` and a literal that is a
//! number, `true`/`false`, or a label (bare or quoted). Keywords are case-insensitive.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest accepted query text in bytes.
pub const MAX_QUERY_BYTES: usize = 1024;
/// Most WHERE clauses accepted.
pub const MAX_CLAUSES: usize = 8;

/// The aggregate asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Aggregate {
    /// Number of matching rows.
    Count,
    /// Sum of a numeric attribute over matching rows.
    Sum(String),
    /// Mean of a numeric attribute over matching rows (SUM / COUNT after decryption).
    Mean(String),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A literal on the right of a clause.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Literal {
    /// A number, with its source text.
    Number(f64),
    /// `true` / `false`.
    Bool(bool),
    /// A label.
    Label(String),
}

/// One `attr op literal` clause.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Clause {
    /// Attribute name.
    pub attribute: String,
    /// Operator.
    pub op: Op,
    /// Literal.
    pub literal: Literal,
}

/// A parsed query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// The aggregate.
    pub aggregate: Aggregate,
    /// The conjunction of clauses.
    pub clauses: Vec<Clause>,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Num(f64, String),
    Str(String),
    Op(Op),
    Star,
    LParen,
    RParen,
}

fn tok_text(t: &Tok) -> String {
    match t {
        Tok::Word(w) => w.clone(),
        Tok::Num(_, s) => s.clone(),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Op(o) => o.to_string(),
        Tok::Star => "*".into(),
        Tok::LParen => "(".into(),
        Tok::RParen => ")".into(),
    }
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i] as char;
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            while i < b.len() && ((b[i] as char).is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((start, Tok::Word(text[start..i].to_string())));
        } else if c.is_ascii_digit() || c == '-' || c == '.' {
            i += 1;
            while i < b.len() && ((b[i] as char).is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            let s = &text[start..i];
            let v: f64 = s.parse().map_err(|_| Error::Syntax {
                expected: "a number".into(),
                position: start,
                found: s.into(),
            })?;
            out.push((start, Tok::Num(v, s.to_string())));
        } else if c == '\'' || c == '"' {
            i += 1;
            while i < b.len() && b[i] as char != c {
                i += 1;
            }
            if i >= b.len() {
                return Err(Error::Syntax {
                    expected: format!("closing {c}"),
                    position: start,
                    found: "end of query".into(),
                });
            }
            out.push((start, Tok::Str(text[start + 1..i].to_string())));
            i += 1;
        } else {
            let two = text.get(i..i + 2).unwrap_or("");
            let (op, len) = match (two, c) {
                (">=", _) => (Some(Op::Ge), 2),
                ("<=", _) => (Some(Op::Le), 2),
                ("!=", _) | ("<>", _) => (Some(Op::Ne), 2),
                ("==", _) => (Some(Op::Eq), 2),
                (_, '=') => (Some(Op::Eq), 1),
                (_, '<') => (Some(Op::Lt), 1),
                (_, '>') => (Some(Op::Gt), 1),
                _ => (None, 1),
            };
            let tok = match (op, c) {
                (Some(op), _) => Tok::Op(op),
                (None, '*') => Tok::Star,
                (None, '(') => Tok::LParen,
                (None, ')') => Tok::RParen,
                _ => {
                    return Err(Error::Syntax {
                        expected: "a word, number, quoted label or operator".into(),
                        position: start,
                        found: c.to_string(),
                    });
                }
            };
            i += len;
            out.push((start, tok));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.1)
    }

    fn err<T>(&self, expected: &str) -> Result<T> {
        let (position, found) = match self.toks.get(self.pos) {
            Some((p, t)) => (*p, tok_text(t)),
            None => (self.end, "end of query".to_string()),
        };
        Err(Error::Syntax {
            expected: expected.into(),
            position,
            found,
        })
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if let Some(Tok::Word(w)) = self.peek()
            && w.eq_ignore_ascii_case(kw)
        {
            self.pos += 1;
            return true;
        }
        false
    }

    fn ident(&mut self, expected: &str) -> Result<String> {
        match self.peek() {
            Some(Tok::Word(w)) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => self.err(expected),
        }
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == Some(tok) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn aggregate(&mut self) -> Result<Aggregate> {
        if self.keyword("count") {
            if self.eat(&Tok::LParen) {
                if !self.eat(&Tok::Star) {
                    return self.err("*");
                }
                if !self.eat(&Tok::RParen) {
                    return self.err(")");
                }
            }
            return Ok(Aggregate::Count);
        }
        let sum = self.keyword("sum");
        if !sum && !self.keyword("mean") && !self.keyword("avg") {
            return self.err("COUNT, SUM or MEAN");
        }
        let paren = self.eat(&Tok::LParen);
        let attr = self.ident("an attribute name")?;
        if paren && !self.eat(&Tok::RParen) {
            return self.err(")");
        }
        Ok(if sum {
            Aggregate::Sum(attr)
        } else {
            Aggregate::Mean(attr)
        })
    }

    fn clause(&mut self) -> Result<Clause> {
        let attribute = self.ident("an attribute name")?;
        let op = match self.peek() {
            Some(Tok::Op(op)) => *op,
            _ => return self.err("a comparison operator (= != < <= > >=)"),
        };
        self.pos += 1;
        let literal = match self.peek().cloned() {
            Some(Tok::Num(v, _)) => Literal::Number(v),
            Some(Tok::Str(s)) => Literal::Label(s),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Some(Tok::Word(w)) => Literal::Label(w),
            _ => return self.err("a number, true/false or a label"),
        };
        self.pos += 1;
        Ok(Clause {
            attribute,
            op,
            literal,
        })
    }
}

impl Query {
    /// Parses a query.
    pub fn parse(text: &str) -> Result<Query> {
        if text.trim().is_empty() || text.len() > MAX_QUERY_BYTES {
            return Err(Error::QuerySize {
                max: MAX_QUERY_BYTES,
                got: text.len(),
            });
        }
        let mut p = Parser {
            toks: lex(text)?,
            pos: 0,
            end: text.len(),
        };
        let aggregate = p.aggregate()?;
        let mut clauses = Vec::new();
        if p.keyword("where") {
            loop {
                clauses.push(p.clause()?);
                if !p.keyword("and") {
                    break;
                }
            }
        }
        if p.peek().is_some() {
            return p.err(if clauses.is_empty() {
                "WHERE or end of query"
            } else {
                "AND or end of query"
            });
        }
        if clauses.len() > MAX_CLAUSES {
            return Err(Error::TooManyClauses {
                max: MAX_CLAUSES,
                got: clauses.len(),
            });
        }
        Ok(Query { aggregate, clauses })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        })
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Number(v) => write!(f, "{v}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Label(s) => write!(f, "{s}"),
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.aggregate {
            Aggregate::Count => write!(f, "COUNT")?,
            Aggregate::Sum(a) => write!(f, "SUM {a}")?,
            Aggregate::Mean(a) => write!(f, "MEAN {a}")?,
        }
        for (i, c) in self.clauses.iter().enumerate() {
            let kw = if i == 0 { "WHERE" } else { "AND" };
            write!(f, " {kw} {} {} {}", c.attribute, c.op, c.literal)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conjunction_parses_into_clauses() {
        let q =
            Query::parse("count where age >= 40 AND age < 60 and diabetes = 1").expect("parses");
        assert_eq!(q.aggregate, Aggregate::Count);
        assert_eq!(q.clauses.len(), 3);
        assert_eq!(q.clauses[2].literal, Literal::Number(1.0));
        let q = Query::parse("MEAN(bmi) WHERE sex = 'female'").expect("parses");
        assert_eq!(q.aggregate, Aggregate::Mean("bmi".into()));
    }

    #[test]
    fn an_empty_or_oversized_query_is_refused() {
        assert!(matches!(Query::parse("  "), Err(Error::QuerySize { .. })));
        let long = format!("COUNT WHERE {}", "a = 1 AND ".repeat(200));
        assert!(matches!(Query::parse(&long), Err(Error::QuerySize { .. })));
    }

    #[test]
    fn a_dangling_and_points_at_the_end_of_the_query() {
        let e = Query::parse("COUNT WHERE age >= 40 AND").expect_err("dangling AND");
        assert!(e.to_string().contains("end of query"), "{e}");
    }
}
