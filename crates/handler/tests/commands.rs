//! `#[derive(Commands)]` through `eventsock_handler::Commands`: a table of messages and what
//! they parse into, the help text, and the router's `commands` handler.
//!
//! `cargo test -p eventsock-handler --test commands -- --nocapture` prints the table.

use eventsock_core::{legacy, Channel, EventKind, EventMeta, EventName, Frame};
use eventsock_handler::{CommandErrorKind, Commands, Dispatcher, Received, Router};
use eventsock_rest::{OutboxError, Outgoing, Postbox, Receipt, RestError};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Commands, Debug, PartialEq)]
#[commands(prefix = "!", prefix = "/")]
enum Cmd {
    /// Check the bot is alive
    Ping,
    /// Order something
    #[command(alias = "buy")]
    Order {
        qty: u32,
        item: String,
    },
    Help,
}

/// Every other shape: tuple variants, optional fields, renames, another prefix and naming.
#[derive(Commands, Debug, PartialEq)]
#[commands(prefix = "#", rename_all = "snake_case")]
enum Admin {
    /// Limit the messages per minute
    SetLimit(u32),
    #[command(rename = "kick", alias = "ban", description = "Remove someone")]
    Remove {
        who: String,
        /// Shown to them.
        reason: Option<String>,
    },
    /// Turn the bot on or off
    Switch { on: bool, delay: Option<u16> },
    /// Leave a note
    Note(#[command(rename = "text")] Option<String>),
}

/// What a message is expected to give.
enum Expect<C> {
    /// This command.
    Parsed(C),
    /// None of the enum's commands: `Ok(None)`.
    NotACommand,
    /// An error whose text is this.
    Error(&'static str),
}

/// Checks every row of `table`, printing what each input gave (in one piece, so that tests
/// running beside it do not cut into the table).
fn check<C: Commands + std::fmt::Debug + PartialEq>(title: &str, table: Vec<(&str, Expect<C>)>) {
    let mut out = format!(
        "\n{title}\n{:<34} | result\n{:-<34}-+-{:-<72}\n",
        "input", "", ""
    );
    let mut wrong = Vec::new();
    for (input, expected) in table {
        let got = C::parse(input);
        let shown = match &got {
            Ok(Some(c)) => format!("Ok    {c:?}"),
            Ok(None) => "None  (not a command)".to_owned(),
            Err(e) => format!("Err   {e}"),
        };
        out.push_str(&format!("{:<34} | {shown}\n", format!("{input:?}")));
        let right = match (&got, &expected) {
            (Ok(Some(c)), Expect::Parsed(e)) => c == e,
            (Ok(None), Expect::NotACommand) => true,
            (Err(e), Expect::Error(text)) => e.to_string() == *text,
            _ => false,
        };
        if !right {
            wrong.push(input.to_owned());
        }
    }
    print!("{out}");
    assert!(wrong.is_empty(), "rows not as expected: {wrong:?}");
}

fn order(qty: u32, item: &str) -> Expect<Cmd> {
    Expect::Parsed(Cmd::Order {
        qty,
        item: item.into(),
    })
}

#[test]
fn messages_parse_into_commands_or_errors() {
    use Expect::*;
    check(
        "Cmd (prefixes ! and /)",
        vec![
            ("!ping", Parsed(Cmd::Ping)),
            ("  /PING  ", Parsed(Cmd::Ping)),
            ("!help", Parsed(Cmd::Help)),
            ("!order 2 pizza", order(2, "pizza")),
            ("!order 2 large pizza", order(2, "large pizza")),
            ("/ORDER 2 \"large pizza\"", order(2, "large pizza")),
            ("!Order 2 'large pizza'", order(2, "large pizza")),
            ("!order 2 “large pizza”", order(2, "large pizza")),
            ("!order 2 \"say \\\"hi\\\"\"", order(2, "say \"hi\"")),
            ("!order \"2\" pizza's crust", order(2, "pizza's crust")),
            ("!buy 3 coke", order(3, "coke")),
            ("!order\n2\npizza", order(2, "pizza")),
            (
                "!order two pizza",
                Error("`two` is not a valid number for qty. Usage: !order <qty> <item>"),
            ),
            (
                "/buy -1 pizza",
                Error("`-1` is not a valid number for qty. Usage: /order <qty> <item>"),
            ),
            (
                "!order",
                Error("Missing argument qty. Usage: !order <qty> <item>"),
            ),
            (
                "!order 2",
                Error("Missing argument item. Usage: !order <qty> <item>"),
            ),
            (
                "!order 2 \"large pizza",
                Error("Unclosed quote: a closing `\"` is missing. Usage: !order <qty> <item>"),
            ),
            (
                "!order \"2 pizza",
                Error("Unclosed quote: a closing `\"` is missing. Usage: !order <qty> <item>"),
            ),
            (
                "!ping extra",
                Error("Too many arguments: `extra` is left over. Usage: !ping"),
            ),
            (
                "/help me please",
                Error("Too many arguments: `me please` is left over. Usage: /help"),
            ),
            ("hello", NotACommand),
            ("!unknown", NotACommand),
            ("! order 2 pizza", NotACommand),
            ("!orders 2 pizza", NotACommand),
            ("#order 2 pizza", NotACommand),
            ("order 2 pizza", NotACommand),
            ("!", NotACommand),
            ("", NotACommand),
        ],
    );
}

#[test]
fn tuple_and_optional_fields_renames_and_another_prefix() {
    use Expect::*;
    let remove = |who: &str, reason: Option<&str>| {
        Parsed(Admin::Remove {
            who: who.into(),
            reason: reason.map(Into::into),
        })
    };
    check(
        "Admin (prefix #, snake_case)",
        vec![
            ("#set_limit 20", Parsed(Admin::SetLimit(20))),
            ("#SET_LIMIT 20", Parsed(Admin::SetLimit(20))),
            (
                "#set_limit",
                Error("Missing argument arg1. Usage: #set_limit <arg1>"),
            ),
            ("#kick bob", remove("bob", None)),
            (
                "#ban bob spamming the group",
                remove("bob", Some("spamming the group")),
            ),
            (
                "#kick \"bob smith\" spam",
                remove("bob smith", Some("spam")),
            ),
            ("#remove bob", NotACommand),
            (
                "#switch on",
                Error(
                    "`on` is not a valid true or false value for on. Usage: #switch <on> [delay]",
                ),
            ),
            (
                "#switch true",
                Parsed(Admin::Switch {
                    on: true,
                    delay: None,
                }),
            ),
            (
                "#switch false 30",
                Parsed(Admin::Switch {
                    on: false,
                    delay: Some(30),
                }),
            ),
            (
                "#switch false 99999",
                Error("`99999` is not a valid number for delay. Usage: #switch <on> [delay]"),
            ),
            (
                "#switch false 30 now",
                Error("Too many arguments: `now` is left over. Usage: #switch <on> [delay]"),
            ),
            ("#note", Parsed(Admin::Note(None))),
            (
                "#note buy milk",
                Parsed(Admin::Note(Some("buy milk".into()))),
            ),
            ("!set_limit 20", NotACommand),
        ],
    );
}

#[test]
fn errors_tell_what_is_wrong_apart() {
    let e = Cmd::parse("/buy x pizza").unwrap_err();
    assert_eq!(e.command(), "order");
    assert_eq!(e.usage(), "/order <qty> <item>");
    assert_eq!(
        e.kind(),
        &CommandErrorKind::Invalid {
            arg: "qty",
            value: "x".into(),
            expected: "number"
        }
    );
    assert!(matches!(
        Cmd::parse("!order").unwrap_err().kind(),
        CommandErrorKind::Missing { arg: "qty" }
    ));
    assert!(matches!(
        Cmd::parse("!ping 1 2").unwrap_err().kind(),
        CommandErrorKind::TooMany { extra } if extra == "1 2"
    ));
    assert!(matches!(
        Cmd::parse("!order 'x").unwrap_err().kind(),
        CommandErrorKind::UnclosedQuote { quote: '\'' }
    ));
}

#[test]
fn the_help_text_lists_every_command() {
    let help = Cmd::help();
    print!(
        "\nCmd::help()\n{help}\n\nAdmin::help()\n{}\n",
        Admin::help()
    );
    assert_eq!(
        help,
        "!ping — Check the bot is alive\n\
         !order <qty> <item> (or !buy) — Order something\n\
         !help"
    );
    assert_eq!(
        Admin::help(),
        "#set_limit <arg1> — Limit the messages per minute\n\
         #kick <who> [reason] (or #ban) — Remove someone\n\
         #switch <on> [delay] — Turn the bot on or off\n\
         #note [text] — Leave a note"
    );
    assert_eq!(Cmd::usage("order").as_deref(), Some("!order <qty> <item>"));
    assert_eq!(Cmd::usage("/BUY").as_deref(), Some("!order <qty> <item>"));
    assert_eq!(Cmd::usage("nope"), None);
    let names: Vec<_> = Cmd::commands().iter().map(|c| c.name).collect();
    assert_eq!(names, ["ping", "order", "help"]);
    assert_eq!(Cmd::prefixes(), ["!", "/"]);
}

/// A postbox that keeps what it is given, as (chat, text).
#[derive(Default)]
struct Sent(Mutex<Vec<(String, String)>>);

impl Postbox for Sent {
    fn post<'a>(
        &'a self,
        _instance: &'a str,
        message: Outgoing,
    ) -> Pin<Box<dyn Future<Output = Result<Receipt, OutboxError>> + 'a>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((message.to.clone(), message.text.clone()));
        let outcome = Err(OutboxError::Refused(RestError::Unavailable(
            "kept by the test".into(),
        )));
        Box::pin(async move { Ok(Receipt::settled(message.id, outcome)) })
    }
}

/// The router calls the handler with each command parsed, answers a command with wrong
/// arguments with its usage, and skips the rest (other messages, the bot's own).
#[test]
fn the_router_routes_by_command_and_answers_wrong_arguments() {
    let handled: Arc<Mutex<Vec<String>>> = Arc::default();
    let orders = Arc::new(AtomicUsize::new(0));
    let (seen, count) = (handled.clone(), orders.clone());
    let router = Router::builder()
        .commands(move |m: Received<legacy::MessagesUpsert>, cmd: Cmd| {
            if let Cmd::Order { qty, .. } = &cmd {
                count.fetch_add(*qty as usize, Ordering::Relaxed);
            }
            seen.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(format!("{cmd:?} from {}", m.cx.chat().unwrap_or_default()));
            async { Ok(()) }
        })
        .build();
    let sent = Arc::new(Sent::default());
    let dispatcher = Dispatcher::new(router.clone()).postbox(sent.clone());
    let event = EventName::from(EventKind::MessagesUpsert);
    let meta = |_: Option<&Frame<'_>>| EventMeta::live(event.clone(), "codechat");
    let frame = |id: &str, from_me: bool, text: &str| {
        serde_json::json!({
            "keyId": id,
            "keyRemoteJid": "1@s.whatsapp.net",
            "keyFromMe": from_me,
            "messageType": "conversation",
            "content": { "text": text },
        })
        .to_string()
    };
    let messages = [
        ("A1", false, "!order 2 pizza"),
        ("A2", false, "hello"),
        ("A3", false, "!order two pizza"),
        ("A4", true, "!order 5 from the bot itself"),
        ("A5", false, "/BUY 3 coke"),
        ("A6", false, "!ping"),
    ];
    let tallies = actix_rt::System::new().block_on(async {
        let mut tallies = Vec::new();
        for (id, from_me, text) in messages {
            let frame = frame(id, from_me, text);
            let tally = dispatcher
                .handle(&event, Some(Channel::Legacy), &frame, &meta, true)
                .await;
            tallies.push((tally.handled, tally.failed));
        }
        tallies
    });
    // Every message reached the handler (skipping one is handling it), and none failed.
    assert_eq!(tallies, [(1, 0); 6]);
    assert_eq!(
        *handled.lock().unwrap_or_else(PoisonError::into_inner),
        [
            "Order { qty: 2, item: \"pizza\" } from 1@s.whatsapp.net",
            "Order { qty: 3, item: \"coke\" } from 1@s.whatsapp.net",
            "Ping from 1@s.whatsapp.net",
        ]
    );
    assert_eq!(orders.load(Ordering::Relaxed), 5);
    assert_eq!(
        *sent.0.lock().unwrap_or_else(PoisonError::into_inner),
        [(
            "1@s.whatsapp.net".to_owned(),
            "`two` is not a valid number for qty. Usage: !order <qty> <item>".to_owned()
        )]
    );
}
