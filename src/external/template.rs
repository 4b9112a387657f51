//! An external server's command line with its placeholders: `{port}`, `{backlog}` and
//! `{addr}`, filled in per run. `{{` and `}}` stand for literal braces (a shell's
//! `${VAR}` is written `${{VAR}}`).

use std::net::IpAddr;

/// What a command may hold besides text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Port,
    Backlog,
    Addr,
}

/// A checked command template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Text pieces and placeholders, in order.
    pieces: Vec<Result<String, Part>>,
}

/// A command that cannot be a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{name}` is not one of the placeholders.
    #[error("unknown placeholder {{{0}}} in the server command; the placeholders are {{port}}, {{backlog}} and {{addr}} (write {{{{ and }}}} for literal braces, e.g. ${{{{VAR}}}})")]
    Unknown(String),
    /// A `{` without its `}` or a lone `}`.
    #[error("unbalanced brace in the server command at byte {0}; placeholders are {{port}}, {{backlog}}, {{addr}}, literal braces are {{{{ and }}}}")]
    Unbalanced(usize),
    /// The command never says which port to listen on.
    #[error("the server command has no {{port}}: each run picks its port, so put {{port}} where the server is told its port (e.g. --port {{port}} or listen {{addr}}:{{port}})")]
    NoPort,
    /// Nothing to run.
    #[error("the server command is empty; give the command that starts it, e.g. 'python3 examples/seed_server.py {{port}} {{backlog}}'")]
    Empty,
}

impl Template {
    /// Parses `command`, checking every placeholder.
    pub fn parse(command: &str) -> Result<Template, TemplateError> {
        if command.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = command.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let rest = &command[i + 1..];
                    let end = rest.find('}').ok_or(TemplateError::Unbalanced(i))?;
                    let name = &rest[..end];
                    let part = match name {
                        "port" => Part::Port,
                        "backlog" => Part::Backlog,
                        "addr" => Part::Addr,
                        _ => return Err(TemplateError::Unknown(name.to_string())),
                    };
                    for _ in 0..=name.chars().count() {
                        chars.next();
                    }
                    pieces.push(Ok(std::mem::take(&mut text)));
                    pieces.push(Err(part));
                }
                '}' => return Err(TemplateError::Unbalanced(i)),
                c => text.push(c),
            }
        }
        pieces.push(Ok(text));
        if !pieces.contains(&Err(Part::Port)) {
            return Err(TemplateError::NoPort);
        }
        Ok(Template { pieces })
    }

    /// The command for one run.
    pub fn render(&self, addr: IpAddr, port: u16, backlog: u32) -> String {
        let mut s = String::new();
        for p in &self.pieces {
            match p {
                Ok(t) => s.push_str(t),
                Err(Part::Port) => s.push_str(&port.to_string()),
                Err(Part::Backlog) => s.push_str(&backlog.to_string()),
                Err(Part::Addr) => s.push_str(&addr.to_string()),
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled() {
        let t = Template::parse("srv --listen {addr}:{port} -b {backlog} ${{HOME}}").unwrap();
        assert_eq!(
            t.render([127, 0, 0, 1].into(), 8080, 511),
            "srv --listen 127.0.0.1:8080 -b 511 ${HOME}"
        );
    }

    #[test]
    fn bad_templates_name_the_problem() {
        for (cmd, want) in [
            ("srv {port} {bakclog}", "unknown placeholder {bakclog}"),
            ("srv {port", "unbalanced brace"),
            ("srv {port} }", "unbalanced brace"),
            ("srv --port 80", "has no {port}"),
            ("  ", "empty"),
            ("sh -c 'echo ${HOME}' {port}", "unknown placeholder {HOME}"),
        ] {
            let e = Template::parse(cmd).unwrap_err().to_string();
            assert!(e.contains(want), "{cmd}: {e}");
        }
    }
}
