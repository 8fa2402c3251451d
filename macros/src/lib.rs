//! Procedural macros for the [xev] runtime: `#[xev::main]` and `#[xev::test]`.
//!
//! Use them through the `xev` crate, which re-exports both; this crate is an
//! implementation detail and has no API of its own.
//!
//! Both macros turn an `async fn` into a plain `fn` whose body runs on a fresh
//! runtime via `xev::rt::block_on`. The original body is moved, unchanged, into
//! an `async move` block, so `return`, `?` and the declared return type keep
//! working as they would in a synchronous function.
//!
//! Misuse (a missing `async`, arguments, generics, an unknown or malformed
//! option, a second test attribute) is a compile error pointing at the
//! offending token.
//!
//! [xev]: https://docs.rs/xev

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{parse::Parser, Expr, ExprLit, ItemFn, Lit, LitBool, LitStr, Path};

/// Runs an `async fn main` on the xev runtime.
///
/// ```ignore
/// #[xev::main]
/// async fn main() -> std::io::Result<()> {
///     let listener = xev::net::TcpListener::bind("127.0.0.1:0")?;
///     println!("listening on {}", listener.local_addr()?);
///     Ok(())
/// }
/// ```
///
/// expands to
///
/// ```ignore
/// fn main() -> std::io::Result<()> {
///     ::xev::rt::block_on(async move {
///         let listener = xev::net::TcpListener::bind("127.0.0.1:0")?;
///         println!("listening on {}", listener.local_addr()?);
///         Ok(())
///     })
/// }
/// ```
///
/// # Options
///
/// - `crate = "path"`: the path of the xev crate, for when it is re-exported
///   under another name (`#[xev::main(crate = "my_rt::xev")]`). Default `::xev`.
///
/// `timeout_ms` is deliberately not accepted here: a program decides for itself
/// how long it runs, and `xev::time::timeout` inside `main` says so explicitly.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Main, args.into(), item.into()).into()
}

/// Runs an `async fn` as a `#[test]` on a fresh xev runtime.
///
/// ```ignore
/// #[xev::test]
/// async fn echoes() -> std::io::Result<()> {
///     let listener = xev::net::TcpListener::bind("127.0.0.1:0")?;
///     let client = xev::net::TcpStream::connect(listener.local_addr()?).await?;
///     client.write_all(b"ping").await?;
///     Ok(())
/// }
///
/// // Fails with "test `slow` timed out after 2000 ms" if the body runs longer.
/// #[xev::test(timeout_ms = 2000)]
/// async fn slow() {
///     xev::time::sleep(std::time::Duration::from_millis(10)).await;
/// }
///
/// // The clock is paused: an hour's sleep takes no real time (feature `test-util`).
/// #[xev::test(start_paused = true, timeout_ms = 2000)]
/// async fn an_hour() {
///     xev::time::sleep(std::time::Duration::from_secs(3600)).await;
/// }
/// ```
///
/// Other attributes on the function (`#[should_panic]`, `#[ignore]`, doc
/// comments, lints) are kept. The function must not carry another test
/// attribute such as `#[test]` or `#[tokio::test]`: `#[xev::test]` already adds
/// `#[test]`.
///
/// # Options
///
/// - `timeout_ms = N`: fail the test with a panic if the body has not
///   completed after `N` milliseconds (`N` is a positive integer literal).
///   The body is dropped at that point, on the runtime's thread. This is
///   real time, even when the runtime's clock is paused.
/// - `start_paused = true`: the runtime's clock starts paused, as if
///   `xev::time::pause()` were the body's first line, so sleeps and timeouts
///   jump ahead as soon as the runtime is idle (see `xev::time::pause`).
///   Needs xev's feature `test-util`; without it the test does not compile,
///   with the error "`start_paused = true` needs xev's `test-util` feature".
///   `start_paused = false` is the default.
/// - `crate = "path"`: the path of the xev crate, for when it is re-exported
///   under another name. Default `::xev`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Test, args.into(), item.into()).into()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Main,
    Test,
}

impl Kind {
    /// The attribute as the user wrote it, for error messages.
    fn attr(self) -> &'static str {
        match self {
            Kind::Main => "#[xev::main]",
            Kind::Test => "#[xev::test]",
        }
    }
}

/// The options inside the attribute's parentheses.
struct Options {
    /// Path to the xev crate in the user's crate (`crate = "..."`).
    krate: Path,
    /// `timeout_ms = N`, tests only.
    timeout_ms: Option<u64>,
    /// `start_paused = true`, tests only: where it was written, for the
    /// error if xev's `test-util` feature is off.
    start_paused: Option<Span>,
}

fn expand(kind: Kind, args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        // Not a function at all: report it and leave the item alone, so the
        // only error the user sees is ours.
        Err(err) => return with_error(item, err),
    };
    let checked = parse_options(kind, args).and_then(|options| {
        check_signature(kind, &func)?;
        Ok(options)
    });
    match checked {
        Ok(options) => generate(kind, func, &options),
        Err(err) => {
            // Emit the error and an empty function of the same name. The
            // user's function as written would add follow-up errors ("`main`
            // function is not allowed to be `async`"), and no function at all
            // would add "`main` function not found"; the stub adds neither.
            let err = err.to_compile_error();
            let ItemFn { vis, sig, .. } = func;
            let ident = sig.ident;
            quote! {
                #err
                #[allow(dead_code)]
                #vis fn #ident() {}
            }
        }
    }
}

fn with_error(item: TokenStream2, err: syn::Error) -> TokenStream2 {
    let err = err.to_compile_error();
    quote! { #err #item }
}

fn parse_options(kind: Kind, args: TokenStream2) -> syn::Result<Options> {
    let mut krate: Option<Path> = None;
    let mut timeout_ms: Option<u64> = None;
    let mut start_paused: Option<bool> = None;
    let mut start_paused_span = Span::call_site();
    let parser = syn::meta::parser(|meta| {
        // Each option's span is its name, so errors point at what to change.
        let name = &meta.path;
        let duplicate = || {
            let name = quote!(#name).to_string();
            meta.error(format!("duplicate option `{name}`, remove one of them"))
        };
        if name.is_ident("crate") {
            if krate.is_some() {
                return Err(duplicate());
            }
            let lit: LitStr = meta.value()?.parse().map_err(|err| {
                syn::Error::new(err.span(), "expected a string, as in `crate = \"xev\"`")
            })?;
            krate = Some(lit.parse().map_err(|_| {
                syn::Error::new_spanned(
                    &lit,
                    "`crate` must be a path to the xev crate, as in `crate = \"my_rt::xev\"`",
                )
            })?);
        } else if name.is_ident("timeout_ms") {
            if kind == Kind::Main {
                return Err(meta.error(
                    "`timeout_ms` is only supported on `#[xev::test]`; \
                     wrap the body in `xev::time::timeout` instead",
                ));
            }
            if timeout_ms.is_some() {
                return Err(duplicate());
            }
            timeout_ms = Some(parse_timeout(&meta.value()?.parse()?)?);
        } else if name.is_ident("start_paused") {
            if kind == Kind::Main {
                return Err(meta.error(
                    "`start_paused` is only supported on `#[xev::test]`: \
                     a paused clock is for tests",
                ));
            }
            if start_paused.is_some() {
                return Err(duplicate());
            }
            start_paused_span = name.span();
            let msg = "`start_paused` must be `true` or `false`, as in `start_paused = true`";
            let value: Expr = meta.value()?.parse()?;
            match &value {
                Expr::Lit(ExprLit {
                    lit: Lit::Bool(LitBool { value, .. }),
                    ..
                }) => start_paused = Some(*value),
                _ => return Err(syn::Error::new_spanned(value, msg)),
            }
        } else {
            let name = quote!(#name).to_string().replace(' ', "");
            let known = match kind {
                Kind::Main => "the only option is `crate`",
                Kind::Test => "the options are `timeout_ms`, `start_paused` and `crate`",
            };
            return Err(meta.error(format!(
                "unknown option `{name}` for `{}`; {known}",
                kind.attr()
            )));
        }
        Ok(())
    });
    parser.parse2(args)?;
    Ok(Options {
        krate: krate.unwrap_or_else(|| syn::parse_quote!(::xev)),
        timeout_ms,
        start_paused: start_paused.unwrap_or(false).then_some(start_paused_span),
    })
}

/// `timeout_ms` takes a positive integer literal (a constant is not visible to
/// a proc macro, and a zero timeout would fail every test).
fn parse_timeout(value: &Expr) -> syn::Result<u64> {
    let msg = "`timeout_ms` must be a positive integer of milliseconds, as in `timeout_ms = 2000`";
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => match int.base10_parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(ms),
            _ => Err(syn::Error::new_spanned(int, msg)),
        },
        _ => Err(syn::Error::new_spanned(value, msg)),
    }
}

/// Rejects what `block_on` cannot drive: every error at once, each on its token.
fn check_signature(kind: Kind, func: &ItemFn) -> syn::Result<()> {
    let sig = &func.sig;
    let mut errors: Vec<syn::Error> = Vec::new();
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            sig.fn_token,
            "the `async` keyword is missing from the function declaration",
        ));
    }
    if !sig.inputs.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.inputs,
            format!(
                "the `{}` function cannot accept arguments; remove them",
                kind.attr()
            ),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        // `Generics` prints its params and where clause separately; span both.
        let generics = &sig.generics;
        let where_clause = &generics.where_clause;
        errors.push(syn::Error::new_spanned(
            quote!(#generics #where_clause),
            format!(
                "`{}` functions cannot be generic; remove the generic parameters",
                kind.attr()
            ),
        ));
    }
    if kind == Kind::Test {
        // Any attribute named `test` (`#[test]`, `#[xev::test]`,
        // `#[tokio::test]`, `#[core::prelude::v1::test]`) would register the
        // function twice or fight over its body.
        for attr in &func.attrs {
            let path = attr.path();
            if path.segments.last().is_some_and(|s| s.ident == "test") {
                let shown = quote!(#path).to_string().replace(' ', "");
                errors.push(syn::Error::new_spanned(
                    attr,
                    format!(
                        "second test attribute is supplied, remove `#[{shown}]`; \
                         `#[xev::test]` already makes the function a test"
                    ),
                ));
            }
        }
    }
    let mut errors = errors.into_iter();
    match errors.next() {
        None => Ok(()),
        Some(mut first) => {
            first.extend(errors);
            Err(first)
        }
    }
}

fn generate(kind: Kind, func: ItemFn, options: &Options) -> TokenStream2 {
    let ItemFn {
        attrs,
        vis,
        mut sig,
        block,
    } = func;
    sig.asyncness = None;
    let krate = &options.krate;
    let body = match options.timeout_ms {
        None => quote! { async move #block },
        Some(ms) => {
            // Real time, even when the runtime's clock is paused.
            let message = format!("test `{}` timed out after {ms} ms", sig.ident);
            quote! {
                async move {
                    match #krate::time::test_support::real_time_limit(
                        ::std::time::Duration::from_millis(#ms),
                        async move #block,
                    )
                    .await
                    {
                        ::core::option::Option::Some(output) => output,
                        ::core::option::Option::None => ::core::panic!(#message),
                    }
                }
            }
        }
    };
    // A paused clock needs xev's `test-util` feature: without it the trait
    // has no impl, and its error message, on `start_paused`, says so.
    let block_on = match options.start_paused {
        None => quote! { #krate::rt::block_on },
        Some(span) => quote_spanned! {span=>
            <() as #krate::time::test_support::StartPaused>::runtime().block_on
        },
    };
    let test_attr = match kind {
        Kind::Main => quote! {},
        Kind::Test => quote! { #[::core::prelude::v1::test] },
    };
    // The result is named with the span of the body's closing brace, so a
    // mismatch between the body's value and the declared return type points
    // into the user's function rather than at the attribute.
    let output = quote_spanned! {block.brace_token.span.close()=> output };
    quote! {
        #test_attr
        #(#attrs)*
        #vis #sig {
            let #output = #block_on(#body);
            #output
        }
    }
}
