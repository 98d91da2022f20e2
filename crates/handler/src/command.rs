//! [`Commands`]: bot commands such as `!order 2 pizza`, parsed into an enum with
//! `#[derive(Commands)]`, with usage errors a bot can send back and a generated help text.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// Bot commands parsed into a type, usually an enum with `#[derive(Commands)]`: each variant
/// is a command, each of its fields an argument.
///
/// ```
/// use eventsock_handler::Commands;
///
/// #[derive(Commands, Debug, PartialEq)]
/// #[commands(prefix = "!", prefix = "/")]
/// enum Cmd {
///     /// Check the bot is alive
///     Ping,
///     /// Order something
///     #[command(alias = "buy")]
///     Order { qty: u32, item: String },
///     /// Roll dice
///     Roll { sides: Option<u32> },
///     Help,
/// }
///
/// let order = |qty, item: &str| Cmd::Order { qty, item: item.into() };
/// assert_eq!(Cmd::parse("!order 2 pizza"), Ok(Some(order(2, "pizza"))));
/// assert_eq!(Cmd::parse("/ORDER 2 large pizza"), Ok(Some(order(2, "large pizza"))));
/// assert_eq!(Cmd::parse("!buy 3 \"coke\""), Ok(Some(order(3, "coke"))));
/// assert_eq!(Cmd::parse("!roll"), Ok(Some(Cmd::Roll { sides: None })));
/// assert_eq!(Cmd::parse("hello"), Ok(None));
/// assert_eq!(Cmd::parse("!unknown"), Ok(None));
/// assert_eq!(
///     Cmd::parse("!order two pizza").unwrap_err().to_string(),
///     "`two` is not a valid number for qty. Usage: !order <qty> <item>"
/// );
/// assert_eq!(
///     Cmd::help(),
///     "!ping — Check the bot is alive\n\
///      !order <qty> <item> (or !buy) — Order something\n\
///      !roll [sides] — Roll dice\n\
///      !help"
/// );
/// ```
///
/// With the [`Router`](crate::Router), [`RouterBuilder::commands`](crate::RouterBuilder::commands)
/// calls a handler with each command parsed, and answers the user with the usage when the
/// arguments are wrong.
///
/// # How a message is read
/// - It is a command when, after leading whitespace, it starts with one of the prefixes
///   immediately followed by a command's name or alias, matched without regard to case
///   (`!ORDER` is `!order`; `! order` is no command). Otherwise [`parse`](Commands::parse)
///   gives `Ok(None)`, as for an unknown name: the message is not for these commands.
/// - The arguments are separated by whitespace. An argument that starts with a quote (`"`,
///   `'`, or the typographic `“` and `‘` that phones type) runs to its closing quote, which is
///   removed: `"large pizza"` is one argument. Inside quotes a backslash escapes the quote or
///   a backslash (`"say \"hi\""`). A quote inside a word is just a character (`don't`). A
///   quote that is never closed is an error.
/// - Each field is parsed with [`FromStr`], in order. An `Option<T>` field may be missing
///   (a missing field is an error otherwise); an argument left over is an error.
/// - The last field, when it is a `String` (or an `Option<String>`), takes the rest of the
///   line as written: `!order 2 large pizza` gives `item: "large pizza"`. When the rest is one
///   quoted argument, its quotes are removed.
///
/// An `Err` means the message is one of these commands but its arguments are wrong; its
/// [`Display`](fmt::Display) says what is wrong and how the command is used, for the user.
///
/// # The derive's attributes
/// - On the enum, `#[commands(prefix = "!", prefix = "/", rename_all = "lowercase")]`: the
///   prefixes (`!` and `/` by default) and how variants' names become commands' names
///   (`"lowercase"`, the default, `"snake_case"` or `"kebab-case"`); `crate = "path"` names
///   this crate when the derive cannot find it in your `Cargo.toml` (it finds
///   `eventsock-handler` and the `eventsock` facade by itself).
/// - On a variant, `#[command(rename = "ord", alias = "o", alias = "buy", description =
///   "...")]`; without a `description`, the doc comment is the help text's.
/// - On a field, `#[command(rename = "...")]`: its name in the usage and the errors (a tuple
///   variant's fields are `arg1`, `arg2`... by default).
///
/// Structs, unions, generic enums and unknown attribute keys are compile errors.
///
/// # By hand
/// The derive writes [`prefixes`](Commands::prefixes), [`commands`](Commands::commands) and
/// [`from_args`](Commands::from_args); the other methods are provided.
pub trait Commands: Sized {
    /// What a command starts with, such as `!` and `/`. The help text and
    /// [`usage`](Commands::usage) use the first.
    fn prefixes() -> &'static [&'static str];

    /// The commands, in order: names, arguments and descriptions.
    fn commands() -> &'static [CommandSpec];

    /// Builds the command at `index` of [`commands`](Commands::commands) from its arguments,
    /// taken from `args` one after another. [`parse`](Commands::parse) calls it once the name
    /// matched, and then refuses arguments left over.
    fn from_args(index: usize, args: &mut CommandArgs<'_>) -> Result<Self, CommandError>;

    /// The command in `text`: `Ok(None)` when `text` is not one of these commands (no prefix,
    /// or an unknown name), `Err` when it is one but its arguments are wrong.
    fn parse(text: &str) -> Result<Option<Self>, CommandError> {
        let Some((prefix, index, rest)) = locate(text, Self::prefixes(), Self::commands()) else {
            return Ok(None);
        };
        let Some(spec) = Self::commands().get(index) else {
            return Ok(None);
        };
        let mut args = CommandArgs::new(prefix, spec, rest);
        let command = Self::from_args(index, &mut args)?;
        args.finish()?;
        Ok(Some(command))
    }

    /// The help text: one line per command, with its usage, aliases and description, such as
    /// `!order <qty> <item> (or !buy) — Order something`.
    fn help() -> String {
        let prefix = Self::prefixes().first().copied().unwrap_or_default();
        Self::commands()
            .iter()
            .map(|spec| spec.help_line(prefix))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The usage of the command named `name` (or one of its aliases, with or without a
    /// prefix, in any case), such as `!order <qty> <item>`; `None` for an unknown name.
    fn usage(name: &str) -> Option<String> {
        let prefix = Self::prefixes().first().copied().unwrap_or_default();
        let commands = Self::commands();
        let spec = commands.iter().find(|c| c.is_named(name)).or_else(|| {
            Self::prefixes()
                .iter()
                .filter_map(|p| name.strip_prefix(p))
                .find_map(|n| commands.iter().find(|c| c.is_named(n)))
        })?;
        Some(spec.usage(prefix))
    }
}

/// One command of a [`Commands`] type: what its help line and usage are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// Its name, without a prefix: `order`.
    pub name: &'static str,
    /// Its other names: `buy`.
    pub aliases: &'static [&'static str],
    /// Its arguments, in order.
    pub args: &'static [ArgSpec],
    /// Its line in the help text (empty: none).
    pub description: &'static str,
}

/// One argument of a [`CommandSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgSpec {
    /// Its name in the usage and the errors: `qty`.
    pub name: &'static str,
    /// What its value is, in an error such as "`abc` is not a valid **number** for qty".
    pub kind: &'static str,
    /// Whether it may be missing (an `Option` field): `[name]` in the usage, `<name>` if not.
    pub optional: bool,
    /// Whether it takes the rest of the line.
    pub rest: bool,
}

impl CommandSpec {
    /// Whether `name` is this command's name or one of its aliases, whatever its case.
    pub fn is_named(&self, name: &str) -> bool {
        same_caseless(self.name, name) || self.aliases.iter().any(|a| same_caseless(a, name))
    }

    /// How the command is used, after `prefix`: `!order <qty> <item>`, `!roll [sides]`.
    pub fn usage(&self, prefix: &str) -> String {
        let mut out = format!("{prefix}{}", self.name);
        for arg in self.args {
            let (open, close) = if arg.optional { ('[', ']') } else { ('<', '>') };
            out.push(' ');
            out.push(open);
            out.push_str(arg.name);
            out.push(close);
        }
        out
    }

    /// Its line in the help text: usage, aliases, description.
    fn help_line(&self, prefix: &str) -> String {
        let mut line = self.usage(prefix);
        if !self.aliases.is_empty() {
            let aliases: Vec<String> = self
                .aliases
                .iter()
                .map(|a| format!("{prefix}{a}"))
                .collect();
            line.push_str(&format!(" (or {})", aliases.join(", ")));
        }
        if !self.description.is_empty() {
            line.push_str(" — ");
            line.push_str(self.description);
        }
        line
    }
}

fn same_caseless(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// The prefix, the index of the command and the text after its name, when `text` is one of
/// `commands`. The longest prefix that `text` starts with is tried first.
fn locate<'t>(
    text: &'t str,
    prefixes: &[&str],
    commands: &[CommandSpec],
) -> Option<(&'t str, usize, &'t str)> {
    let text = text.trim_start();
    let mut candidates: Vec<&str> = prefixes
        .iter()
        .copied()
        .filter(|p| text.starts_with(p))
        .collect();
    candidates.sort_by_key(|p| std::cmp::Reverse(p.len()));
    candidates.into_iter().find_map(|prefix| {
        let after = &text[prefix.len()..];
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let (name, rest) = after.split_at(end);
        if name.is_empty() {
            return None;
        }
        let index = commands.iter().position(|c| c.is_named(name))?;
        Some((&text[..prefix.len()], index, rest))
    })
}

/// The arguments of one command being parsed, taken in order by
/// [`Commands::from_args`]: each call takes the next argument of the command's
/// [`CommandSpec`], and its errors name it.
#[derive(Debug)]
pub struct CommandArgs<'a> {
    prefix: &'a str,
    spec: &'static CommandSpec,
    /// The text not read yet.
    rest: &'a str,
    /// The index of the next argument in `spec.args`.
    at: usize,
}

impl<'a> CommandArgs<'a> {
    /// The arguments in `rest` (the text after the command's name) of the command `spec`,
    /// written with `prefix`.
    pub fn new(prefix: &'a str, spec: &'static CommandSpec, rest: &'a str) -> CommandArgs<'a> {
        CommandArgs {
            prefix,
            spec,
            rest,
            at: 0,
        }
    }

    /// The command being parsed.
    pub fn spec(&self) -> &'static CommandSpec {
        self.spec
    }

    /// The next argument, parsed; missing is an error.
    pub fn required<T: FromStr>(&mut self) -> Result<T, CommandError> {
        let value = self.next_token()?;
        self.parsed(value)
    }

    /// The next argument, parsed, if there is one.
    pub fn optional<T: FromStr>(&mut self) -> Result<Option<T>, CommandError> {
        match self.next_token()? {
            Some(value) => self.parsed(Some(value)).map(Some),
            None => {
                self.at += 1;
                Ok(None)
            }
        }
    }

    /// The rest of the line, parsed (as written, or without its quotes when it is one quoted
    /// argument); missing is an error.
    pub fn rest<T: FromStr>(&mut self) -> Result<T, CommandError> {
        let value = self.rest_text()?;
        self.parsed(value)
    }

    /// The rest of the line, parsed, if there is any.
    pub fn rest_optional<T: FromStr>(&mut self) -> Result<Option<T>, CommandError> {
        match self.rest_text()? {
            Some(value) => self.parsed(Some(value)).map(Some),
            None => {
                self.at += 1;
                Ok(None)
            }
        }
    }

    /// `Ok` when every argument was taken; an argument left over is an error.
    pub fn finish(&mut self) -> Result<(), CommandError> {
        let extra = self.rest.trim();
        if extra.is_empty() {
            return Ok(());
        }
        let extra = extra.to_owned();
        self.rest = "";
        Err(self.error(CommandErrorKind::TooMany { extra }))
    }

    fn next_token(&mut self) -> Result<Option<Cow<'a, str>>, CommandError> {
        match token(self.rest) {
            Ok(Some((value, rest))) => {
                self.rest = rest;
                Ok(Some(value))
            }
            Ok(None) => Ok(None),
            Err(quote) => Err(self.error(CommandErrorKind::UnclosedQuote { quote })),
        }
    }

    fn rest_text(&mut self) -> Result<Option<Cow<'a, str>>, CommandError> {
        let text = self.rest.trim();
        self.rest = "";
        if text.is_empty() {
            return Ok(None);
        }
        if text.chars().next().and_then(closing).is_some() {
            match token(text) {
                Ok(Some((value, after))) if after.trim().is_empty() => return Ok(Some(value)),
                Ok(_) => {}
                Err(quote) => return Err(self.error(CommandErrorKind::UnclosedQuote { quote })),
            }
        }
        Ok(Some(Cow::Borrowed(text)))
    }

    /// `value` parsed as the current argument, which is then done.
    fn parsed<T: FromStr>(&mut self, value: Option<Cow<'a, str>>) -> Result<T, CommandError> {
        let (name, kind) = self
            .spec
            .args
            .get(self.at)
            .map_or(("argument", "value"), |a| (a.name, a.kind));
        self.at += 1;
        let Some(value) = value else {
            return Err(self.error(CommandErrorKind::Missing { arg: name }));
        };
        value.parse::<T>().map_err(|_| {
            self.error(CommandErrorKind::Invalid {
                arg: name,
                value: value.into_owned(),
                expected: kind,
            })
        })
    }

    fn error(&self, kind: CommandErrorKind) -> CommandError {
        CommandError {
            command: self.spec.name,
            usage: self.spec.usage(self.prefix),
            kind,
        }
    }
}

/// The closing quote of an opening one.
fn closing(open: char) -> Option<char> {
    match open {
        '"' => Some('"'),
        '\'' => Some('\''),
        '“' => Some('”'),
        '‘' => Some('’'),
        _ => None,
    }
}

/// The first argument in `text` and the text after it; `None` when only whitespace is left,
/// `Err` with the opening quote of a quoted argument never closed.
fn token(text: &str) -> Result<Option<(Cow<'_, str>, &str)>, char> {
    let text = text.trim_start();
    let mut chars = text.char_indices().peekable();
    let Some(&(_, first)) = chars.peek() else {
        return Ok(None);
    };
    let Some(close) = closing(first) else {
        let end = text.find(char::is_whitespace).unwrap_or(text.len());
        return Ok(Some((Cow::Borrowed(&text[..end]), &text[end..])));
    };
    chars.next();
    let mut value = String::new();
    loop {
        match chars.next() {
            None => return Err(first),
            Some((_, '\\')) => match chars.peek() {
                Some(&(_, c)) if c == close || c == first || c == '\\' => {
                    value.push(c);
                    chars.next();
                }
                _ => value.push('\\'),
            },
            Some((_, c)) if c == close => break,
            Some((_, c)) => value.push(c),
        }
    }
    // What follows the closing quote up to whitespace belongs to the same argument.
    while let Some(&(at, c)) = chars.peek() {
        if c.is_whitespace() {
            return Ok(Some((Cow::Owned(value), &text[at..])));
        }
        value.push(c);
        chars.next();
    }
    Ok(Some((Cow::Owned(value), "")))
}

/// A message that is one of the commands, with wrong arguments. Its
/// [`Display`](fmt::Display) is a sentence to send back to the user, ending with the usage:
/// ``"`abc` is not a valid number for qty. Usage: !order <qty> <item>"``.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} Usage: {usage}")]
pub struct CommandError {
    command: &'static str,
    usage: String,
    kind: CommandErrorKind,
}

impl CommandError {
    /// The command's name (not the alias the user wrote): `order`.
    pub fn command(&self) -> &'static str {
        self.command
    }

    /// The command's usage, with the prefix the user wrote: `/order <qty> <item>`.
    pub fn usage(&self) -> &str {
        &self.usage
    }

    /// What is wrong.
    pub fn kind(&self) -> &CommandErrorKind {
        &self.kind
    }
}

/// What is wrong in a [`CommandError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandErrorKind {
    /// An argument that may not be missing is.
    Missing {
        /// Its name.
        arg: &'static str,
    },
    /// An argument is not a value of its type.
    Invalid {
        /// Its name.
        arg: &'static str,
        /// What the user wrote.
        value: String,
        /// What it should have been: "number".
        expected: &'static str,
    },
    /// There are more arguments than the command takes.
    TooMany {
        /// The text left over.
        extra: String,
    },
    /// A quoted argument has no closing quote.
    UnclosedQuote {
        /// The opening quote.
        quote: char,
    },
}

/// At most this many characters of what the user wrote are repeated in an error.
const SHOWN: usize = 40;

/// `text`, cut to [`SHOWN`] characters.
fn shown(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(SHOWN) {
        Some((at, _)) => Cow::Owned(format!("{}…", &text[..at])),
        None => Cow::Borrowed(text),
    }
}

impl fmt::Display for CommandErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandErrorKind::Missing { arg } => write!(f, "Missing argument {arg}."),
            CommandErrorKind::Invalid {
                arg,
                value,
                expected,
            } => write!(f, "`{}` is not a valid {expected} for {arg}.", shown(value)),
            CommandErrorKind::TooMany { extra } => {
                write!(f, "Too many arguments: `{}` is left over.", shown(extra))
            }
            CommandErrorKind::UnclosedQuote { quote } => {
                let close = closing(*quote).unwrap_or(*quote);
                write!(f, "Unclosed quote: a closing `{close}` is missing.")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument of `text`, as `token` splits them.
    fn split(text: &str) -> Result<Vec<String>, char> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some((value, after)) = token(rest)? {
            out.push(value.into_owned());
            rest = after;
        }
        Ok(out)
    }

    #[test]
    fn the_tokenizer_splits_on_whitespace_and_honours_quotes() {
        let ok = |text: &str, expected: &[&str]| {
            assert_eq!(
                split(text),
                Ok(expected.iter().map(|s| s.to_string()).collect()),
                "{text:?}"
            );
        };
        ok("", &[]);
        ok("   \n\t ", &[]);
        ok("a b  c", &["a", "b", "c"]);
        ok("  2\tpizza\nplease ", &["2", "pizza", "please"]);
        ok(r#""large pizza" 2"#, &["large pizza", "2"]);
        ok("'large pizza' 2", &["large pizza", "2"]);
        ok("“large pizza” ‘x y’", &["large pizza", "x y"]);
        ok(r#""""#, &[""]);
        ok(r#""say \"hi\"" x"#, &[r#"say "hi""#, "x"]);
        ok(r"'it\'s' x", &["it's", "x"]);
        ok(r#""a\\" b"#, &[r"a\", "b"]);
        ok(r#""C:\path" b"#, &[r"C:\path", "b"]);
        ok(r#""a"b c"#, &["ab", "c"]);
        ok("don't panic", &["don't", "panic"]);
        ok(r#"say "hi""#, &["say", "hi"]);
        ok(r#"a"b c"#, &[r#"a"b"#, "c"]);
        ok("ünï cödé 🍕", &["ünï", "cödé", "🍕"]);
    }

    #[test]
    fn an_unclosed_quote_is_an_error() {
        assert_eq!(split(r#"a "b c"#), Err('"'));
        assert_eq!(split("'b c"), Err('\''));
        assert_eq!(split(r#""ends with \""#), Err('"'));
        assert_eq!(split("“no end"), Err('“'));
        assert_eq!(split("\""), Err('"'));
    }

    const ORDER: CommandSpec = CommandSpec {
        name: "order",
        aliases: &["buy", "o"],
        args: &[
            ArgSpec {
                name: "qty",
                kind: "number",
                optional: false,
                rest: false,
            },
            ArgSpec {
                name: "item",
                kind: "text",
                optional: false,
                rest: true,
            },
        ],
        description: "Order something",
    };

    fn order(text: &str) -> Result<(u32, String), CommandError> {
        let mut args = CommandArgs::new("!", &ORDER, text);
        let qty = args.required()?;
        let item = args.rest()?;
        args.finish()?;
        Ok((qty, item))
    }

    #[test]
    fn the_last_text_argument_takes_the_rest_of_the_line() {
        let ok = |text: &str, item: &str| assert_eq!(order(text), Ok((2, item.to_owned())));
        ok(" 2 pizza", "pizza");
        ok(" 2 large  pizza ", "large  pizza");
        ok(" 2 \"large pizza\"", "large pizza");
        ok(" 2 'large pizza'  ", "large pizza");
        ok(" 2 \"large\" pizza", "\"large\" pizza");
        ok(" \"2\" pizza's crust", "pizza's crust");
        ok(" 2 a\nb", "a\nb");
    }

    #[test]
    fn errors_say_what_is_wrong_and_how_the_command_is_used() {
        let err = |text: &str| order(text).unwrap_err().to_string();
        let usage = " Usage: !order <qty> <item>";
        assert_eq!(err(""), format!("Missing argument qty.{usage}"));
        assert_eq!(err(" 2"), format!("Missing argument item.{usage}"));
        assert_eq!(
            err(" two pizza"),
            format!("`two` is not a valid number for qty.{usage}")
        );
        assert_eq!(
            err(" 2 \"large pizza"),
            format!("Unclosed quote: a closing `\"` is missing.{usage}")
        );
        assert_eq!(
            err(" \"2 pizza"),
            format!("Unclosed quote: a closing `\"` is missing.{usage}")
        );
        let long = "9".repeat(100);
        assert_eq!(
            err(&format!(" {long} pizza")),
            format!(
                "`{}…` is not a valid number for qty.{usage}",
                "9".repeat(SHOWN)
            )
        );
        let e = order(" x y").unwrap_err();
        assert_eq!((e.command(), e.usage()), ("order", "!order <qty> <item>"));
        assert_eq!(
            e.kind(),
            &CommandErrorKind::Invalid {
                arg: "qty",
                value: "x".into(),
                expected: "number"
            }
        );
    }

    #[test]
    fn arguments_left_over_are_an_error() {
        const PING: CommandSpec = CommandSpec {
            name: "ping",
            aliases: &[],
            args: &[],
            description: "",
        };
        let mut args = CommandArgs::new("/", &PING, "  extra words ");
        assert_eq!(
            args.finish().unwrap_err().to_string(),
            "Too many arguments: `extra words` is left over. Usage: /ping"
        );
        assert_eq!(CommandArgs::new("/", &PING, "  ").finish(), Ok(()));
    }

    #[test]
    fn commands_are_found_after_a_prefix_whatever_the_case() {
        let commands = [ORDER];
        let find = |text| locate(text, &["!", "/", "!!"], &commands);
        assert_eq!(find("!order 2 x"), Some(("!", 0, " 2 x")));
        assert_eq!(find("  /ORDER"), Some(("/", 0, "")));
        assert_eq!(find("!Buy\n2"), Some(("!", 0, "\n2")));
        assert_eq!(find("!!o 1"), Some(("!!", 0, " 1")));
        assert_eq!(find("! order 2 x"), None);
        assert_eq!(find("order 2 x"), None);
        assert_eq!(find("!orders"), None);
        assert_eq!(find("!"), None);
        assert_eq!(find(""), None);
        assert_eq!(ORDER.usage("!"), "!order <qty> <item>");
        assert_eq!(
            ORDER.help_line("!"),
            "!order <qty> <item> (or !buy, !o) — Order something"
        );
    }
}
