//! `#[derive(Commands)]`: parse bot commands such as `!order 2 pizza` into an enum.
//!
//! Use it through `eventsock_handler::Commands` (or `eventsock::handler::Commands`), which
//! re-exports this derive next to the trait it implements; the trait's documentation has the
//! parsing rules and tested examples. This crate only writes the impl.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    Attribute, Data, DeriveInput, Expr, ExprLit, Fields, GenericArgument, Lit, LitStr, Meta,
    PathArguments, Type,
};

/// Implements `Commands` for an enum: each variant is a command, each of its fields an
/// argument.
///
/// ```ignore
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
///     Help,
/// }
///
/// assert_eq!(Cmd::parse("!buy 2 large pizza"), Ok(Some(Cmd::Order { qty: 2, item: "large pizza".into() })));
/// ```
///
/// (Tested in `eventsock-handler`, whose `Commands` trait documents the parsing rules.)
///
/// # On the enum: `#[commands(...)]`
/// - `prefix = "!"`: what a command starts with; repeat it for several (`prefix = "!",
///   prefix = "/"`). Without any, `!` and `/`. A prefix has no whitespace in it; it may be
///   empty (every message that starts with a command's name is then that command).
/// - `rename_all = "lowercase"` (the default), `"snake_case"` or `"kebab-case"`: how the
///   variants' names become the commands' names (`OrderAll` is `orderall`, `order_all` or
///   `order-all`).
/// - `crate = "::eventsock::handler"`: the path of the crate that defines the `Commands`
///   trait. Rarely needed: by default the derive reads the `Cargo.toml` of the crate it is used
///   in and finds `eventsock-handler` there, or else the `eventsock` facade (whose
///   `eventsock::handler` it then uses).
///
/// # On a variant: `#[command(...)]`
/// - `rename = "ord"`: the command's name, instead of the one `rename_all` makes.
/// - `alias = "o"`: another name for it; repeat it for several.
/// - `description = "..."`: its line in the help text. Without it, the variant's doc comment.
///
/// # On a field: `#[command(rename = "...")]`
/// Its name in the usage line and the errors (by default the field's name; for a tuple
/// variant `arg1`, `arg2`...).
///
/// # Fields
/// Each field is an argument, parsed with `FromStr`, in order. An `Option<T>` field may be
/// missing (at the end). The last field, when it is a `String` or an `Option<String>`, takes
/// the rest of the line. Names are matched without regard to case. Generic enums, structs and
/// unions are refused at compile time, as are unknown keys in these attributes.
#[proc_macro_derive(Commands, attributes(commands, command))]
pub fn derive_commands(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    match expand(&input, default_crate_path) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// The path of the runtime crate when the enum does not name one: `eventsock-handler` under
/// the name the user's `Cargo.toml` gives it, else the `eventsock` facade's `handler`, else
/// `::eventsock_handler`.
fn default_crate_path() -> syn::Path {
    use proc_macro_crate::{crate_name, FoundCrate};
    let path = match crate_name("eventsock-handler") {
        // In the handler crate's own examples and doc tests: it is a dependency there.
        Ok(FoundCrate::Itself) => "::eventsock_handler".to_owned(),
        Ok(FoundCrate::Name(name)) => format!("::{name}"),
        Err(_) => match crate_name("eventsock") {
            Ok(FoundCrate::Itself) => "::eventsock::handler".to_owned(),
            Ok(FoundCrate::Name(name)) => format!("::{name}::handler"),
            Err(_) => "::eventsock_handler".to_owned(),
        },
    };
    syn::parse_str(&path).unwrap_or_else(|_| syn::parse_quote!(::eventsock_handler))
}

/// What `#[commands(...)]` says.
struct Container {
    prefixes: Vec<String>,
    rename_all: RenameAll,
    krate: Option<syn::Path>,
}

#[derive(Clone, Copy)]
enum RenameAll {
    Lower,
    Snake,
    Kebab,
}

impl RenameAll {
    fn apply(self, ident: &str) -> String {
        let sep = match self {
            RenameAll::Lower => return ident.to_lowercase(),
            RenameAll::Snake => '_',
            RenameAll::Kebab => '-',
        };
        let mut out = String::new();
        for (i, c) in ident.chars().enumerate() {
            if c.is_uppercase() && i > 0 && !out.ends_with(sep) {
                out.push(sep);
            }
            out.extend(c.to_lowercase());
        }
        out
    }
}

/// One command: a variant and what its attributes say.
struct Command {
    ident: syn::Ident,
    name: String,
    aliases: Vec<String>,
    description: String,
    shape: Shape,
    args: Vec<Arg>,
    /// Where the command's names are written, for the errors about them.
    name_spans: Vec<(String, Span)>,
}

enum Shape {
    Unit,
    Named,
    Tuple,
}

/// One argument: a field.
struct Arg {
    /// The field, for a named variant.
    member: Option<syn::Ident>,
    name: String,
    /// The type parsed: the field's, or the `T` of its `Option<T>`.
    parsed: Type,
    optional: bool,
    rest: bool,
    kind: String,
    span: Span,
}

fn expand(input: &DeriveInput, default_crate: fn() -> syn::Path) -> syn::Result<TokenStream2> {
    let data = match &input.data {
        Data::Enum(data) => data,
        Data::Struct(s) => {
            return Err(syn::Error::new(
                s.struct_token.span,
                "#[derive(Commands)] is for enums: one variant per command",
            ))
        }
        Data::Union(u) => {
            return Err(syn::Error::new(
                u.union_token.span,
                "#[derive(Commands)] is for enums: one variant per command",
            ))
        }
    };
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "#[derive(Commands)] does not support generic enums",
        ));
    }
    let container = container_attrs(&input.attrs)?;
    if data.variants.is_empty() {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(Commands)] needs at least one variant: one per command",
        ));
    }
    let mut commands = Vec::new();
    for variant in &data.variants {
        commands.push(command(variant, container.rename_all)?);
    }
    check_unique(&commands)?;

    let krate = container.krate.clone().unwrap_or_else(default_crate);
    let ident = &input.ident;
    let prefixes = &container.prefixes;
    let specs = commands.iter().map(|c| spec(c, &krate));
    // The last command takes every other index, so that the match needs no panic: `parse`
    // gives only the indices of `commands()`.
    let last = commands.len() - 1;
    let arms = commands.iter().enumerate().map(|(i, c)| {
        let pattern = if i == last { quote!(_) } else { quote!(#i) };
        let body = construct(c);
        quote!(#pattern => #body,)
    });
    let body = if commands.len() == 1 {
        let only = construct(&commands[0]);
        quote!(let _ = index; #only)
    } else {
        quote!(match index { #(#arms)* })
    };
    Ok(quote! {
        #[automatically_derived]
        impl #krate::Commands for #ident {
            fn prefixes() -> &'static [&'static str] {
                &[#(#prefixes),*]
            }

            fn commands() -> &'static [#krate::CommandSpec] {
                const COMMANDS: &[#krate::CommandSpec] = &[#(#specs),*];
                COMMANDS
            }

            #[allow(unused_variables)]
            fn from_args(
                index: usize,
                args: &mut #krate::CommandArgs<'_>,
            ) -> ::core::result::Result<Self, #krate::CommandError> {
                ::core::result::Result::Ok({ #body })
            }
        }
    })
}

/// The `CommandSpec` of a command.
fn spec(c: &Command, krate: &syn::Path) -> TokenStream2 {
    let name = &c.name;
    let aliases = &c.aliases;
    let description = &c.description;
    let args = c.args.iter().map(|a| {
        let (name, kind, optional, rest) = (&a.name, &a.kind, a.optional, a.rest);
        quote! {
            #krate::ArgSpec { name: #name, kind: #kind, optional: #optional, rest: #rest }
        }
    });
    quote! {
        #krate::CommandSpec {
            name: #name,
            aliases: &[#(#aliases),*],
            args: &[#(#args),*],
            description: #description,
        }
    }
}

/// The expression that builds the variant from `args`, one argument after another.
fn construct(c: &Command) -> TokenStream2 {
    let ident = &c.ident;
    let bindings: Vec<_> = (0..c.args.len())
        .map(|i| format_ident!("arg{}", i))
        .collect();
    let lets = c.args.iter().zip(&bindings).map(|(a, binding)| {
        let ty = &a.parsed;
        let call = match (a.rest, a.optional) {
            (false, false) => quote_spanned!(a.span=> required::<#ty>),
            (false, true) => quote_spanned!(a.span=> optional::<#ty>),
            (true, false) => quote_spanned!(a.span=> rest::<#ty>),
            (true, true) => quote_spanned!(a.span=> rest_optional::<#ty>),
        };
        quote!(let #binding = args.#call()?;)
    });
    let value = match c.shape {
        Shape::Unit => quote!(Self::#ident),
        Shape::Tuple => quote!(Self::#ident(#(#bindings),*)),
        Shape::Named => {
            let members = c.args.iter().map(|a| &a.member);
            quote!(Self::#ident { #(#members: #bindings),* })
        }
    };
    quote!({ #(#lets)* #value })
}

/// Refuses `attr` when it is `#[name(...)]`, which does not belong where it was put.
fn misplaced(attr: &Attribute, name: &str, message: &str) -> syn::Result<()> {
    if attr.path().is_ident(name) {
        return Err(syn::Error::new_spanned(attr, message));
    }
    Ok(())
}

fn container_attrs(attrs: &[Attribute]) -> syn::Result<Container> {
    let mut prefixes = Vec::new();
    let mut rename_all = None;
    let mut krate = None;
    for attr in attrs {
        misplaced(
            attr,
            "command",
            "#[command(...)] goes on a variant; on the enum, use #[commands(...)]",
        )?;
        if !attr.path().is_ident("commands") {
            continue;
        }
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("prefix") {
                let lit: LitStr = meta.value()?.parse()?;
                let prefix = lit.value();
                if prefix.chars().any(char::is_whitespace) {
                    return Err(syn::Error::new(
                        lit.span(),
                        "a prefix cannot contain whitespace: the command's name follows it directly",
                    ));
                }
                if prefixes.contains(&prefix) {
                    return Err(syn::Error::new(lit.span(), "this prefix is given twice"));
                }
                prefixes.push(prefix);
                Ok(())
            } else if meta.path.is_ident("rename_all") {
                let lit: LitStr = meta.value()?.parse()?;
                let rule = match lit.value().as_str() {
                    "lowercase" => RenameAll::Lower,
                    "snake_case" => RenameAll::Snake,
                    "kebab-case" => RenameAll::Kebab,
                    _ => {
                        return Err(syn::Error::new(
                            lit.span(),
                            "unknown rename_all rule: expected \"lowercase\", \"snake_case\" or \"kebab-case\"",
                        ))
                    }
                };
                if rename_all.replace(rule).is_some() {
                    return Err(meta.error("rename_all is given twice"));
                }
                Ok(())
            } else if meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                if krate.replace(lit.parse::<syn::Path>()?).is_some() {
                    return Err(meta.error("crate is given twice"));
                }
                Ok(())
            } else {
                Err(meta.error(format!(
                    "unknown commands attribute `{}`: expected prefix, rename_all or crate",
                    path_text(&meta.path)
                )))
            }
        })?;
    }
    if prefixes.is_empty() {
        prefixes = vec!["!".to_owned(), "/".to_owned()];
    }
    Ok(Container {
        prefixes,
        rename_all: rename_all.unwrap_or(RenameAll::Lower),
        krate,
    })
}

fn path_text(path: &syn::Path) -> String {
    quote!(#path).to_string().replace(' ', "")
}

/// A command's name or alias, checked.
fn command_name(lit: &LitStr) -> syn::Result<String> {
    let name = lit.value();
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(syn::Error::new(
            lit.span(),
            "a command's name is one word: not empty, without whitespace",
        ));
    }
    Ok(name)
}

fn command(variant: &syn::Variant, rename_all: RenameAll) -> syn::Result<Command> {
    let mut rename = None;
    let mut aliases: Vec<(String, Span)> = Vec::new();
    let mut description = None;
    let mut docs = Vec::new();
    for attr in &variant.attrs {
        misplaced(
            attr,
            "commands",
            "#[commands(...)] goes on the enum; on a variant, use #[command(...)]",
        )?;
        if attr.path().is_ident("doc") {
            if let Meta::NameValue(nv) = &attr.meta {
                if let Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) = &nv.value
                {
                    docs.push(s.value());
                }
            }
            continue;
        }
        if !attr.path().is_ident("command") {
            continue;
        }
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                let lit: LitStr = meta.value()?.parse()?;
                let name = command_name(&lit)?;
                if rename.replace((name, lit.span())).is_some() {
                    return Err(meta.error("rename is given twice"));
                }
                Ok(())
            } else if meta.path.is_ident("alias") {
                let lit: LitStr = meta.value()?.parse()?;
                aliases.push((command_name(&lit)?, lit.span()));
                Ok(())
            } else if meta.path.is_ident("description") {
                let lit: LitStr = meta.value()?.parse()?;
                if description.replace(lit.value()).is_some() {
                    return Err(meta.error("description is given twice"));
                }
                Ok(())
            } else {
                Err(meta.error(format!(
                    "unknown command attribute `{}`: expected rename, alias or description",
                    path_text(&meta.path)
                )))
            }
        })?;
    }
    let (name, name_span) = rename.unwrap_or_else(|| {
        (
            rename_all.apply(&variant.ident.to_string()),
            variant.ident.span(),
        )
    });
    let description = description.unwrap_or_else(|| {
        docs.iter()
            .map(|line| line.trim())
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    });
    let (shape, fields) = match &variant.fields {
        Fields::Unit => (Shape::Unit, Vec::new()),
        Fields::Named(f) => (Shape::Named, f.named.iter().collect()),
        Fields::Unnamed(f) => (Shape::Tuple, f.unnamed.iter().collect()),
    };
    let count = fields.len();
    let mut args = Vec::new();
    for (i, field) in fields.into_iter().enumerate() {
        let mut rename = None;
        for attr in &field.attrs {
            misplaced(
                attr,
                "commands",
                "#[commands(...)] goes on the enum; on a field, use #[command(rename = \"...\")]",
            )?;
            if !attr.path().is_ident("command") {
                continue;
            }
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    let lit: LitStr = meta.value()?.parse()?;
                    let name = command_name(&lit)?;
                    if rename.replace(name).is_some() {
                        return Err(meta.error("rename is given twice"));
                    }
                    Ok(())
                } else {
                    Err(meta.error(format!(
                        "unknown command attribute on a field `{}`: expected rename",
                        path_text(&meta.path)
                    )))
                }
            })?;
        }
        let member = field.ident.clone();
        let name = rename.unwrap_or_else(|| match &member {
            Some(ident) => ident.to_string().trim_start_matches("r#").to_owned(),
            None => format!("arg{}", i + 1),
        });
        let (parsed, optional) = match option_inner(&field.ty) {
            Some(inner) => (inner.clone(), true),
            None => (field.ty.clone(), false),
        };
        let rest = i + 1 == count && is_string(&parsed);
        args.push(Arg {
            member,
            name,
            kind: kind(&parsed),
            parsed,
            optional,
            rest,
            span: field.ty.span(),
        });
    }
    let mut name_spans = vec![(name.clone(), name_span)];
    name_spans.extend(aliases.iter().cloned());
    Ok(Command {
        ident: variant.ident.clone(),
        name,
        aliases: aliases.into_iter().map(|(a, _)| a).collect(),
        description,
        shape,
        args,
        name_spans,
    })
}

/// Refuses two commands (or aliases) of the same name, which case does not tell apart.
fn check_unique(commands: &[Command]) -> syn::Result<()> {
    let mut seen: Vec<String> = Vec::new();
    for c in commands {
        for (name, span) in &c.name_spans {
            let key = name.to_lowercase();
            if seen.contains(&key) {
                return Err(syn::Error::new(
                    *span,
                    format!("two commands are named `{name}` (names are matched without regard to case)"),
                ));
            }
            seen.push(key);
        }
    }
    Ok(())
}

/// The last segment of a plain type path, with its arguments.
fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        Type::Group(g) => last_segment(&g.elem),
        Type::Paren(p) => last_segment(&p.elem),
        _ => None,
    }
}

/// The `T` of an `Option<T>`.
fn option_inner(ty: &Type) -> Option<&Type> {
    let segment = last_segment(ty)?;
    if segment.ident != "Option" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>().as_slice() {
        [GenericArgument::Type(inner)] => Some(inner),
        _ => None,
    }
}

fn is_string(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == "String" && s.arguments.is_none())
}

/// What a value of `ty` is called in an error: "`abc` is not a valid number for qty".
fn kind(ty: &Type) -> String {
    let Some(segment) = last_segment(ty) else {
        return quote!(#ty).to_string().replace(' ', "");
    };
    let ident = segment.ident.to_string();
    match ident.as_str() {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64" | "i128"
        | "isize" | "f32" | "f64" => "number".to_owned(),
        n if n.starts_with("NonZero") => "number".to_owned(),
        "bool" => "true or false value".to_owned(),
        "char" => "single character".to_owned(),
        "String" => "text".to_owned(),
        _ => ident,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler() -> syn::Path {
        syn::parse_quote!(::eventsock_handler)
    }

    fn expand_str(input: DeriveInput) -> Result<String, String> {
        expand(&input, handler)
            .map(|t| t.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_enum_expands_to_an_impl_of_the_trait() {
        let out = expand_str(syn::parse_quote! {
            #[commands(prefix = "!", prefix = "/")]
            enum Cmd {
                /// Check the bot is alive
                Ping,
                /// Order something
                #[command(alias = "buy")]
                Order { qty: u32, item: String },
                Roll(Option<u8>),
            }
        })
        .unwrap();
        for part in [
            "impl :: eventsock_handler :: Commands for Cmd",
            "& [\"!\" , \"/\"]",
            "name : \"order\" , aliases : & [\"buy\"]",
            "description : \"Check the bot is alive\"",
            "required :: < u32 >",
            "rest :: < String >",
            "optional :: < u8 >",
            "name : \"arg1\"",
            "kind : \"number\"",
        ] {
            assert!(out.contains(part), "no {part:?} in {out}");
        }
    }

    #[test]
    fn names_follow_rename_all_and_rename() {
        let out = expand_str(syn::parse_quote! {
            #[commands(rename_all = "snake_case", crate = "::eventsock::handler")]
            enum Cmd {
                OrderAll,
                #[command(rename = "Stop", description = "Stops")]
                Halt { #[command(rename = "when")] at: Option<String> },
            }
        })
        .unwrap();
        assert!(
            out.contains("impl :: eventsock :: handler :: Commands for Cmd"),
            "{out}"
        );
        assert!(out.contains("name : \"order_all\""), "{out}");
        assert!(out.contains("name : \"Stop\""), "{out}");
        assert!(out.contains("name : \"when\""), "{out}");
        assert!(out.contains("rest_optional :: < String >"), "{out}");
        assert!(out.contains("& [\"!\" , \"/\"]"), "default prefixes: {out}");
        assert_eq!(RenameAll::Kebab.apply("OrderAll"), "order-all");
        assert_eq!(RenameAll::Lower.apply("OrderAll"), "orderall");
    }

    #[test]
    fn unsupported_input_is_a_compile_error() {
        let cases: Vec<(DeriveInput, &str)> = vec![
            (
                syn::parse_quote!(
                    struct S;
                ),
                "is for enums",
            ),
            (syn::parse_quote!(union U { a: u8 }), "is for enums"),
            (
                syn::parse_quote!(
                    enum E<T> {
                        A(T),
                    }
                ),
                "generic",
            ),
            (
                syn::parse_quote!(
                    enum E {}
                ),
                "at least one variant",
            ),
            (
                syn::parse_quote!(
                    #[commands(prefix = "!", colour = "red")]
                    enum E {
                        A,
                    }
                ),
                "unknown commands attribute `colour`",
            ),
            (
                syn::parse_quote!(
                    enum E {
                        #[command(hidden)]
                        A,
                    }
                ),
                "unknown command attribute `hidden`",
            ),
            (
                syn::parse_quote!(
                    enum E {
                        A {
                            #[command(alias = "x")]
                            f: u8,
                        },
                    }
                ),
                "unknown command attribute on a field `alias`",
            ),
            (
                syn::parse_quote!(
                    #[command(rename = "x")]
                    enum E {
                        A,
                    }
                ),
                "goes on a variant",
            ),
            (
                syn::parse_quote!(
                    enum E {
                        #[commands(prefix = "!")]
                        A,
                    }
                ),
                "goes on the enum",
            ),
            (
                syn::parse_quote!(
                    #[commands(prefix = "! ")]
                    enum E {
                        A,
                    }
                ),
                "whitespace",
            ),
            (
                syn::parse_quote!(
                    #[commands(rename_all = "SCREAMING")]
                    enum E {
                        A,
                    }
                ),
                "unknown rename_all rule",
            ),
            (
                syn::parse_quote!(
                    enum E {
                        A,
                        #[command(alias = "A")]
                        B,
                    }
                ),
                "two commands are named `A`",
            ),
            (
                syn::parse_quote!(
                    enum E {
                        #[command(rename = "two words")]
                        A,
                    }
                ),
                "one word",
            ),
        ];
        for (input, expected) in cases {
            let err = expand_str(input).unwrap_err();
            assert!(err.contains(expected), "{err:?} does not say {expected:?}");
        }
    }

    #[test]
    fn kinds_name_the_values_expected() {
        let ty = |t: Type| kind(&t);
        assert_eq!(ty(syn::parse_quote!(u32)), "number");
        assert_eq!(ty(syn::parse_quote!(std::num::NonZeroU8)), "number");
        assert_eq!(ty(syn::parse_quote!(bool)), "true or false value");
        assert_eq!(ty(syn::parse_quote!(url::Url)), "Url");
        assert!(is_string(&syn::parse_quote!(std::string::String)));
        assert!(option_inner(&syn::parse_quote!(Option<u32>)).is_some());
        assert!(option_inner(&syn::parse_quote!(u32)).is_none());
    }
}
