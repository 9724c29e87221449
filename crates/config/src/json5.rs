//! A small JSON5 parser that keeps the source position of every value and key, so
//! validation errors can name the line. (The `json5` crate discards positions.)
//!
//! Supports the whole JSON5 grammar: `//` and `/* */` comments, unquoted identifier keys,
//! single- or double-quoted strings with JSON5 escapes and line continuations, trailing
//! commas, hexadecimal numbers, leading/trailing decimal points, explicit `+`. `Infinity`
//! and `NaN` parse but are rejected because JSON cannot carry them. Duplicate keys: the last
//! one wins (as in `JSON5.parse`). Nesting is capped to keep hostile input from exhausting
//! the stack.

use serde_json::{Map, Number, Value};

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 128;

/// A source position (1-based line and column, in characters). `file` indexes the loader's
/// file table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub file: u32,
    pub line: u32,
    pub col: u32,
}

/// An object key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

/// A parsed value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: NodeValue,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Node>),
    /// Members in source order (keys unique; a later duplicate replaced the earlier one).
    Object(Vec<(Key, Node)>),
}

impl Node {
    pub fn new(value: NodeValue, pos: Pos) -> Node {
        Node { value, pos }
    }

    /// The JSON type name used in error messages.
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "boolean",
            NodeValue::Number(n) => {
                if n.is_f64() {
                    "number"
                } else {
                    "integer"
                }
            }
            NodeValue::String(_) => "string",
            NodeValue::Array(_) => "array",
            NodeValue::Object(_) => "object",
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            NodeValue::Object(members) => {
                members.iter().find(|(k, _)| k.name == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// Converts to a plain JSON value (positions dropped).
    pub fn to_value(&self) -> Value {
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Number(n) => Value::Number(n.clone()),
            NodeValue::String(s) => Value::String(s.clone()),
            NodeValue::Array(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            NodeValue::Object(members) => {
                let mut map = Map::new();
                for (k, v) in members {
                    map.insert(k.name.clone(), v.to_value());
                }
                Value::Object(map)
            }
        }
    }

    /// Builds a node tree from a plain value, every position set to `pos`.
    pub fn from_value(value: &Value, pos: Pos) -> Node {
        let v = match value {
            Value::Null => NodeValue::Null,
            Value::Bool(b) => NodeValue::Bool(*b),
            Value::Number(n) => NodeValue::Number(n.clone()),
            Value::String(s) => NodeValue::String(s.clone()),
            Value::Array(items) => {
                NodeValue::Array(items.iter().map(|i| Node::from_value(i, pos)).collect())
            }
            Value::Object(map) => NodeValue::Object(
                map.iter()
                    .map(|(k, v)| {
                        (
                            Key {
                                name: k.clone(),
                                pos,
                            },
                            Node::from_value(v, pos),
                        )
                    })
                    .collect(),
            ),
        };
        Node::new(v, pos)
    }
}

/// A syntax error at a position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {col}: {message}")]
pub struct ParseError {
    pub line: u32,
    pub col: u32,
    pub message: String,
}

/// Parses one JSON5 document (`file` is stored in every position).
pub fn parse(text: &str, file: u32) -> Result<Node, ParseError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        i: 0,
        line: 1,
        col: 1,
        file,
        depth: 0,
    };
    // Tolerate a UTF-8 byte-order mark.
    if p.peek() == Some('\u{feff}') {
        p.bump();
    }
    p.skip_ws()?;
    let node = p.value()?;
    p.skip_ws()?;
    if let Some(c) = p.peek() {
        return Err(p.err(format!(
            "unexpected {} after the end of the document",
            describe(c)
        )));
    }
    Ok(node)
}

struct Parser {
    chars: Vec<char>,
    i: usize,
    line: u32,
    col: u32,
    file: u32,
    depth: usize,
}

fn describe(c: char) -> String {
    match c {
        '\n' => "line break".to_string(),
        c if c.is_control() => format!("control character U+{:04X}", c as u32),
        c => format!("character '{c}'"),
    }
}

fn is_id_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn is_id_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || c == '\u{200c}' || c == '\u{200d}'
}

impl Parser {
    fn pos(&self) -> Pos {
        Pos {
            file: self.file,
            line: self.line,
            col: self.col,
        }
    }

    fn err(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            line: self.line,
            col: self.col,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.i + n).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n'
            || (c == '\r' && self.peek() != Some('\n'))
            || c == '\u{2028}'
            || c == '\u{2029}'
        {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn skip_ws(&mut self) -> Result<(), ParseError> {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() || c == '\u{feff}' => {
                    self.bump();
                }
                Some('/') if self.peek_at(1) == Some('/') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' || c == '\r' {
                            break;
                        }
                        self.bump();
                    }
                }
                Some('/') if self.peek_at(1) == Some('*') => {
                    let start = self.err("unterminated /* comment");
                    self.bump();
                    self.bump();
                    loop {
                        match self.peek() {
                            None => return Err(start),
                            Some('*') if self.peek_at(1) == Some('/') => {
                                self.bump();
                                self.bump();
                                break;
                            }
                            _ => {
                                self.bump();
                            }
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn value(&mut self) -> Result<Node, ParseError> {
        let pos = self.pos();
        match self.peek() {
            None => Err(self.err("unexpected end of input, expected a value")),
            Some('{') => self.nested(|p| p.object(pos)),
            Some('[') => self.nested(|p| p.array(pos)),
            Some('"') | Some('\'') => Ok(Node::new(NodeValue::String(self.string()?), pos)),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => self.number(pos),
            Some(c) if is_id_start(c) => {
                let word = self.identifier();
                match word.as_str() {
                    "true" => Ok(Node::new(NodeValue::Bool(true), pos)),
                    "false" => Ok(Node::new(NodeValue::Bool(false), pos)),
                    "null" => Ok(Node::new(NodeValue::Null, pos)),
                    "Infinity" | "NaN" => Err(ParseError {
                        line: pos.line,
                        col: pos.col,
                        message: format!(
                            "{word} is not allowed in configuration (JSON cannot represent it)"
                        ),
                    }),
                    _ => Err(ParseError {
                        line: pos.line,
                        col: pos.col,
                        message: format!("unexpected word '{word}' (strings must be quoted)"),
                    }),
                }
            }
            Some(c) => Err(self.err(format!("unexpected {}, expected a value", describe(c)))),
        }
    }

    fn nested(
        &mut self,
        f: impl FnOnce(&mut Parser) -> Result<Node, ParseError>,
    ) -> Result<Node, ParseError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.err(format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn object(&mut self, pos: Pos) -> Result<Node, ParseError> {
        self.bump(); // {
        let mut members: Vec<(Key, Node)> = Vec::new();
        loop {
            self.skip_ws()?;
            match self.peek() {
                Some('}') => {
                    self.bump();
                    return Ok(Node::new(NodeValue::Object(members), pos));
                }
                None => {
                    return Err(self.err("unexpected end of input inside an object (missing '}')"))
                }
                _ => {}
            }
            let key_pos = self.pos();
            let name = match self.peek() {
                Some('"') | Some('\'') => self.string()?,
                Some(c) if is_id_start(c) || c == '\\' => self.identifier(),
                Some(c) => {
                    return Err(self.err(format!(
                        "unexpected {}, expected a key or '}}'",
                        describe(c)
                    )))
                }
                None => return Err(self.err("unexpected end of input, expected a key")),
            };
            self.skip_ws()?;
            match self.peek() {
                Some(':') => {
                    self.bump();
                }
                Some(c) => {
                    return Err(self.err(format!(
                        "unexpected {} after key \"{name}\", expected ':'",
                        describe(c)
                    )))
                }
                None => return Err(self.err("unexpected end of input, expected ':'")),
            }
            self.skip_ws()?;
            let value = self.value()?;
            let key = Key { name, pos: key_pos };
            if let Some(slot) = members.iter_mut().find(|(k, _)| k.name == key.name) {
                *slot = (key, value);
            } else {
                members.push((key, value));
            }
            self.skip_ws()?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some('}') => {}
                Some(c) => {
                    return Err(
                        self.err(format!("unexpected {}, expected ',' or '}}'", describe(c)))
                    )
                }
                None => {
                    return Err(self.err("unexpected end of input inside an object (missing '}')"))
                }
            }
        }
    }

    fn array(&mut self, pos: Pos) -> Result<Node, ParseError> {
        self.bump(); // [
        let mut items = Vec::new();
        loop {
            self.skip_ws()?;
            match self.peek() {
                Some(']') => {
                    self.bump();
                    return Ok(Node::new(NodeValue::Array(items), pos));
                }
                None => {
                    return Err(self.err("unexpected end of input inside an array (missing ']')"))
                }
                _ => {}
            }
            items.push(self.value()?);
            self.skip_ws()?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => {}
                Some(c) => {
                    return Err(self.err(format!("unexpected {}, expected ',' or ']'", describe(c))))
                }
                None => {
                    return Err(self.err("unexpected end of input inside an array (missing ']')"))
                }
            }
        }
    }

    fn identifier(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if is_id_continue(c) {
                s.push(c);
                self.bump();
            } else {
                break;
            }
        }
        s
    }

    fn hex_digits(&mut self, n: usize) -> Result<u32, ParseError> {
        let mut v = 0u32;
        for _ in 0..n {
            let c = self
                .peek()
                .ok_or_else(|| self.err("unexpected end of input in an escape"))?;
            let d = c
                .to_digit(16)
                .ok_or_else(|| self.err(format!("invalid hex digit {}", describe(c))))?;
            v = v * 16 + d;
            self.bump();
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.pos();
        let quote = self.bump().unwrap_or('"');
        let mut s = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(ParseError {
                    line: start.line,
                    col: start.col,
                    message: "unterminated string".to_string(),
                });
            };
            if c == quote {
                self.bump();
                return Ok(s);
            }
            if c == '\n' || c == '\r' {
                return Err(
                    self.err("line break inside a string (use \\n, or end the line with \\)")
                );
            }
            self.bump();
            if c != '\\' {
                s.push(c);
                continue;
            }
            let e = self
                .peek()
                .ok_or_else(|| self.err("unexpected end of input in an escape"))?;
            match e {
                'n' | 't' | 'r' | 'b' | 'f' | 'v' | '0' | '\'' | '"' | '\\' | '/' => {
                    self.bump();
                    s.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        'v' => '\u{b}',
                        '0' => '\0',
                        other => other,
                    });
                }
                'x' => {
                    self.bump();
                    let v = self.hex_digits(2)?;
                    s.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                }
                'u' => {
                    self.bump();
                    let hi = self.hex_digits(4)?;
                    if (0xD800..0xDC00).contains(&hi)
                        && self.peek() == Some('\\')
                        && self.peek_at(1) == Some('u')
                    {
                        self.bump();
                        self.bump();
                        let lo = self.hex_digits(4)?;
                        let cp =
                            0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3ff);
                        s.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                    } else {
                        s.push(char::from_u32(hi).unwrap_or('\u{fffd}'));
                    }
                }
                '\n' | '\u{2028}' | '\u{2029}' => {
                    self.bump();
                }
                '\r' => {
                    self.bump();
                    if self.peek() == Some('\n') {
                        self.bump();
                    }
                }
                c if c.is_ascii_digit() => return Err(self.err("octal escapes are not allowed")),
                other => {
                    // JSON5: any other escaped character stands for itself.
                    self.bump();
                    s.push(other);
                }
            }
        }
    }

    fn number(&mut self, pos: Pos) -> Result<Node, ParseError> {
        let at = |message: String| ParseError {
            line: pos.line,
            col: pos.col,
            message,
        };
        let mut negative = false;
        if let Some(sign @ ('+' | '-')) = self.peek() {
            negative = sign == '-';
            self.bump();
        }
        if self.peek().is_some_and(is_id_start) {
            let word = self.identifier();
            return Err(at(match word.as_str() {
                "Infinity" | "NaN" => {
                    format!("{word} is not allowed in configuration (JSON cannot represent it)")
                }
                _ => format!("invalid number '{word}'"),
            }));
        }
        if self.peek() == Some('0') && matches!(self.peek_at(1), Some('x' | 'X')) {
            self.bump();
            self.bump();
            let mut digits = String::new();
            while let Some(c) = self.peek().filter(char::is_ascii_hexdigit) {
                digits.push(c);
                self.bump();
            }
            let v = i64::from_str_radix(&digits, 16)
                .map_err(|_| at(format!("invalid hexadecimal number 0x{digits}")))?;
            let n = if negative { -v } else { v };
            return Ok(Node::new(NodeValue::Number(Number::from(n)), pos));
        }
        let mut text = String::new();
        if negative {
            text.push('-');
        }
        let mut int_digits = 0;
        while let Some(c) = self.peek().filter(char::is_ascii_digit) {
            text.push(c);
            int_digits += 1;
            self.bump();
        }
        let mut is_float = false;
        let mut frac_digits = 0;
        if self.peek() == Some('.') {
            is_float = true;
            self.bump();
            if int_digits == 0 {
                text.push('0');
            }
            text.push('.');
            while let Some(c) = self.peek().filter(char::is_ascii_digit) {
                text.push(c);
                frac_digits += 1;
                self.bump();
            }
            if frac_digits == 0 {
                text.push('0');
            }
        }
        if int_digits == 0 && frac_digits == 0 {
            return Err(at("invalid number".to_string()));
        }
        if let Some(e @ ('e' | 'E')) = self.peek() {
            is_float = true;
            text.push(e);
            self.bump();
            if let Some(sign @ ('+' | '-')) = self.peek() {
                text.push(sign);
                self.bump();
            }
            let mut exp_digits = 0;
            while let Some(c) = self.peek().filter(char::is_ascii_digit) {
                text.push(c);
                exp_digits += 1;
                self.bump();
            }
            if exp_digits == 0 {
                return Err(at("invalid number: exponent has no digits".to_string()));
            }
        }
        if self.peek().is_some_and(|c| is_id_continue(c) || c == '.') {
            let c = self.peek().unwrap_or(' ');
            return Err(self.err(format!("unexpected {} in a number", describe(c))));
        }
        let number = if is_float {
            let f: f64 = text
                .parse()
                .map_err(|_| at(format!("invalid number {text}")))?;
            // Integral floats such as `1.0` or `1e3` stay integers for type checks.
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                Number::from(f as i64)
            } else {
                Number::from_f64(f).ok_or_else(|| at(format!("number {text} is out of range")))?
            }
        } else if negative {
            text.parse::<i64>()
                .map(Number::from)
                .or_else(|_| {
                    text.parse::<f64>()
                        .map_err(|_| ())
                        .and_then(|f| Number::from_f64(f).ok_or(()))
                })
                .map_err(|_| at(format!("number {text} is out of range")))?
        } else {
            text.parse::<u64>()
                .map(Number::from)
                .or_else(|_| {
                    text.parse::<f64>()
                        .map_err(|_| ())
                        .and_then(|f| Number::from_f64(f).ok_or(()))
                })
                .map_err(|_| at(format!("number {text} is out of range")))?
        };
        Ok(Node::new(NodeValue::Number(number), pos))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn v(text: &str) -> Value {
        parse(text, 0)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .to_value()
    }

    #[test]
    fn json5_values_table() {
        let cases: Vec<(&str, Value)> = vec![
            ("{}", json!({})),
            ("[]", json!([])),
            ("null", json!(null)),
            ("true", json!(true)),
            ("  // c\n false /* x */", json!(false)),
            ("{a: 1, 'b': 2, \"c\": 3,}", json!({"a":1,"b":2,"c":3})),
            ("[1, 2, 3,]", json!([1, 2, 3])),
            ("{$k_1: 'x'}", json!({"$k_1": "x"})),
            ("'it\\'s'", json!("it's")),
            ("\"tab\\there\"", json!("tab\there")),
            ("'a\\\nb'", json!("ab")),
            ("'\\x41\\u0042\\uD83D\\uDE00'", json!("AB😀")),
            ("'\\q'", json!("q")),
            ("0x1F", json!(31)),
            ("-0x10", json!(-16)),
            ("+5", json!(5)),
            (".5", json!(0.5)),
            ("5.", json!(5)),
            ("1e3", json!(1000)),
            ("1.5e-1", json!(0.15)),
            ("-7", json!(-7)),
            ("18446744073709551615", json!(18446744073709551615u64)),
            ("{a: {b: [ {c: null} ]}}", json!({"a":{"b":[{"c":null}]}})),
            ("{a: 1, a: 2}", json!({"a": 2})),
            ("\u{feff}{}", json!({})),
        ];
        for (text, want) in cases {
            assert_eq!(v(text), want, "{text:?}");
        }
    }

    #[test]
    fn positions_are_tracked() {
        let text = "{\n  // comment\n  gateway: {\n    port: 18789,\n    'bind': \"lan\",\n  },\n}";
        let root = parse(text, 3).unwrap();
        let gw = root.get("gateway").unwrap();
        assert_eq!((gw.pos.line, gw.pos.col, gw.pos.file), (3, 12, 3));
        let port = gw.get("port").unwrap();
        assert_eq!((port.pos.line, port.pos.col), (4, 11));
        match &gw.value {
            NodeValue::Object(m) => {
                assert_eq!(
                    (m[1].0.name.as_str(), m[1].0.pos.line, m[1].0.pos.col),
                    ("bind", 5, 5)
                );
            }
            _ => panic!("object expected"),
        }
        assert_eq!(port.type_name(), "integer");
    }

    #[test]
    fn errors_table() {
        let cases: Vec<(&str, u32, u32, &str)> = vec![
            ("", 1, 1, "unexpected end of input, expected a value"),
            (
                "{a: 1",
                1,
                6,
                "unexpected end of input inside an object (missing '}')",
            ),
            (
                "{a 1}",
                1,
                4,
                "unexpected character '1' after key \"a\", expected ':'",
            ),
            (
                "{\n  a: 1\n  b: 2\n}",
                3,
                3,
                "unexpected character 'b', expected ',' or '}'",
            ),
            (
                "[1 2]",
                1,
                4,
                "unexpected character '2', expected ',' or ']'",
            ),
            ("'abc", 1, 1, "unterminated string"),
            (
                "\"a\nb\"",
                1,
                3,
                "line break inside a string (use \\n, or end the line with \\)",
            ),
            (
                "{a: yes}",
                1,
                5,
                "unexpected word 'yes' (strings must be quoted)",
            ),
            (
                "{a: NaN}",
                1,
                5,
                "NaN is not allowed in configuration (JSON cannot represent it)",
            ),
            (
                "-Infinity",
                1,
                1,
                "Infinity is not allowed in configuration (JSON cannot represent it)",
            ),
            ("/* open", 1, 1, "unterminated /* comment"),
            (
                "{} x",
                1,
                4,
                "unexpected character 'x' after the end of the document",
            ),
            ("1e", 1, 1, "invalid number: exponent has no digits"),
            ("12abc", 1, 3, "unexpected character 'a' in a number"),
            ("'\\1'", 1, 3, "octal escapes are not allowed"),
            (
                "{,}",
                1,
                2,
                "unexpected character ',', expected a key or '}'",
            ),
        ];
        for (text, line, col, msg) in cases {
            let e = parse(text, 0).unwrap_err();
            assert_eq!(
                (e.line, e.col, e.message.as_str()),
                (line, col, msg),
                "{text:?}"
            );
        }
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep, 0)
            .unwrap_err()
            .message
            .contains("nesting deeper"));
    }

    #[test]
    fn plain_json_matches_serde_json() {
        let text = r#"{"a":[1,2.5,-3,"x\u00e9\n",true,null,{"b":{}}],"c":1e-7}"#;
        let ours = v(text);
        let theirs: Value = serde_json::from_str(text).unwrap();
        assert_eq!(ours, theirs);
    }
}
