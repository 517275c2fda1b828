//! Checks the PurposeOfUse table in `custos_types::purpose` against the HL7 source it was written
//! from, `data/hl7/ActReason.xml`, read here with a small hand-written scanner (independent of
//! the table).
//!
//! The scanner understands what a FHIR CodeSystem in XML uses: elements with attributes, nested
//! `<concept>` elements, each with `<code value=..>`, `<display value=..>` and `<property>`
//! elements holding `<code value=..>` and one `value*` element (`valueCode`, `valueBoolean`,
//! `valueString`). It skips the prolog, comments, CDATA and text, and decodes the XML entities.
//! The hierarchy is the union of `subsumedBy` properties and `<concept>` nesting.

use std::collections::{BTreeMap, BTreeSet};

use custos_types::purpose::{PURPOSE_SYSTEM, Purpose, PurposeError};

/// Descendants of `PurposeOfUse` that the table deliberately leaves out although the XML marks
/// them selectable and not retired, each with the reason. None in v3-ActReason 4.0.0.
const REFUSED: &[(&str, &str)] = &[];

/// The abstract root; not a purpose.
const ROOT: &str = "PurposeOfUse";

// ---------------------------------------------------------------------------------------------
// Scanner

#[derive(Debug, PartialEq)]
enum Kind {
    Open,
    Close,
    Empty,
}

#[derive(Debug)]
struct Tag {
    name: String,
    attrs: BTreeMap<String, String>,
    kind: Kind,
}

impl Tag {
    fn value(&self) -> Result<String, String> {
        self.attrs
            .get("value")
            .cloned()
            .ok_or_else(|| format!("<{}> without a value attribute", self.name))
    }
}

/// Decodes the predefined entities and character references.
fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let semi = rest[amp..]
            .find(';')
            .ok_or_else(|| format!("unterminated entity in {raw:?}"))?;
        let name = &rest[amp + 1..amp + semi];
        match name {
            "quot" => out.push('"'),
            "amp" => out.push('&'),
            "lt" => out.push('<'),
            "gt" => out.push('>'),
            "apos" => out.push('\''),
            _ => {
                let number = if let Some(hex) = name.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = name.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                let ch = number
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("unknown entity &{name}; in {raw:?}"))?;
                out.push(ch);
            }
        }
        rest = &rest[amp + semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Drops a namespace prefix (`fhir:concept` -> `concept`).
fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// Splits the document into tags, skipping text, the prolog, comments, CDATA and DOCTYPE.
fn scan(xml: &str) -> Result<Vec<Tag>, String> {
    let mut tags = Vec::new();
    let mut pos = 0;
    while let Some(lt) = xml[pos..].find('<') {
        let start = pos + lt;
        let rest = &xml[start..];
        let skip_to = |end: &str| {
            rest.find(end)
                .map(|i| start + i + end.len())
                .ok_or_else(|| {
                    format!(
                        "unterminated {:?} at byte {start}",
                        &rest[..rest.len().min(9)]
                    )
                })
        };
        if rest.starts_with("<!--") {
            pos = skip_to("-->")?;
            continue;
        }
        if rest.starts_with("<?") {
            pos = skip_to("?>")?;
            continue;
        }
        if rest.starts_with("<![CDATA[") {
            pos = skip_to("]]>")?;
            continue;
        }
        if rest.starts_with("<!") {
            pos = skip_to(">")?;
            continue;
        }
        // Find the closing '>' outside quoted attribute values.
        let mut quote = None;
        let mut end = None;
        for (i, c) in rest.char_indices().skip(1) {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), _) if c == q => quote = None,
                (None, '>') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.ok_or_else(|| format!("unterminated tag at byte {start}"))?;
        let mut inner = rest[1..end].trim();
        pos = start + end + 1;
        let kind = if let Some(name) = inner.strip_prefix('/') {
            inner = name.trim();
            Kind::Close
        } else if let Some(body) = inner.strip_suffix('/') {
            inner = body.trim_end();
            Kind::Empty
        } else {
            Kind::Open
        };
        let name_end = inner.find(char::is_whitespace).unwrap_or(inner.len());
        let name = local(&inner[..name_end]).to_owned();
        if name.is_empty() {
            return Err(format!("tag without a name at byte {start}"));
        }
        let mut attrs = BTreeMap::new();
        let mut a = inner[name_end..].trim_start();
        while !a.is_empty() {
            let eq = a
                .find('=')
                .ok_or_else(|| format!("bad attribute in <{name}>: {a:?}"))?;
            let key = local(a[..eq].trim()).to_owned();
            let v = a[eq + 1..].trim_start();
            let q = v
                .chars()
                .next()
                .filter(|c| *c == '"' || *c == '\'')
                .ok_or_else(|| format!("unquoted attribute in <{name}>"))?;
            let close = v[1..]
                .find(q)
                .ok_or_else(|| format!("unterminated attribute in <{name}>"))?;
            attrs.insert(key, unescape(&v[1..1 + close])?);
            a = v[close + 2..].trim_start();
        }
        if kind == Kind::Close && !attrs.is_empty() {
            return Err(format!("attributes on </{name}>"));
        }
        tags.push(Tag { name, attrs, kind });
    }
    if !xml[pos..].trim().is_empty() {
        return Err("text after the last tag".into());
    }
    Ok(tags)
}

// ---------------------------------------------------------------------------------------------
// Code system model

#[derive(Debug, Default)]
struct Concept {
    code: Option<String>,
    display: Option<String>,
    /// Index of the enclosing `<concept>`, if nested.
    nested_in: Option<usize>,
    /// (property code, value) pairs.
    properties: Vec<(String, String)>,
}

#[derive(Debug)]
struct XmlConcept {
    display: Option<String>,
    parents: BTreeSet<String>,
    not_selectable: bool,
    status: Option<String>,
}

#[derive(Debug)]
struct CodeSystem {
    url: Option<String>,
    version: Option<String>,
    concepts: BTreeMap<String, XmlConcept>,
}

fn read_code_system(xml: &str) -> Result<CodeSystem, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut arena: Vec<Concept> = Vec::new();
    let mut open_concepts: Vec<usize> = Vec::new();
    // (property code, value) of the <property> being read inside a concept.
    let mut property: Option<(Option<String>, Option<String>)> = None;
    let mut url = None;
    let mut version = None;

    for tag in scan(xml)? {
        let parent = stack.last().map(String::as_str);
        let grandparent = stack.len().checked_sub(2).map(|i| stack[i].as_str());
        match tag.kind {
            Kind::Close => {
                if parent != Some(tag.name.as_str()) {
                    return Err(format!("</{}> closes <{parent:?}>", tag.name));
                }
                stack.pop();
                let in_concept = stack.last().map(String::as_str) == Some("concept");
                if tag.name == "concept" {
                    open_concepts.pop();
                } else if tag.name == "property" && in_concept {
                    let (code, value) = property.take().ok_or("stray </property>")?;
                    let code = code.ok_or("concept property without a code")?;
                    let value = value.ok_or_else(|| format!("property {code} without a value"))?;
                    let current = *open_concepts.last().ok_or("property outside a concept")?;
                    arena[current].properties.push((code, value));
                }
                continue;
            }
            Kind::Open | Kind::Empty => {}
        }
        match (tag.name.as_str(), parent, grandparent) {
            ("CodeSystem", None, _) => {}
            (_, None, _) => return Err(format!("root element <{}>", tag.name)),
            ("url", Some("CodeSystem"), _) => url = Some(tag.value()?),
            ("version", Some("CodeSystem"), _) => version = Some(tag.value()?),
            ("concept", Some("CodeSystem" | "concept"), _) => {
                if tag.kind == Kind::Empty {
                    return Err("empty <concept/>".into());
                }
                arena.push(Concept {
                    nested_in: open_concepts.last().copied(),
                    ..Concept::default()
                });
                open_concepts.push(arena.len() - 1);
            }
            ("code", Some("concept"), _) => {
                let current = *open_concepts.last().ok_or("code outside a concept")?;
                if arena[current].code.replace(tag.value()?).is_some() {
                    return Err("concept with two codes".into());
                }
            }
            ("display", Some("concept"), _) => {
                let current = *open_concepts.last().ok_or("display outside a concept")?;
                arena[current].display = Some(tag.value()?);
            }
            ("property", Some("concept"), _) => {
                if tag.kind == Kind::Empty || property.is_some() {
                    return Err("malformed concept <property>".into());
                }
                property = Some((None, None));
            }
            ("code", Some("property"), Some("concept")) => {
                let slot = property.as_mut().ok_or("stray property code")?;
                if slot.0.replace(tag.value()?).is_some() {
                    return Err("property with two codes".into());
                }
            }
            (name, Some("property"), Some("concept")) if name.starts_with("value") => {
                let slot = property.as_mut().ok_or("stray property value")?;
                if slot.1.replace(tag.value()?).is_some() {
                    return Err("property with two values".into());
                }
            }
            _ => {}
        }
        if tag.kind == Kind::Open {
            stack.push(tag.name);
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed elements {stack:?}"));
    }

    let codes: Vec<String> = arena
        .iter()
        .map(|c| c.code.clone().ok_or("concept without a code"))
        .collect::<Result<_, _>>()?;
    let mut concepts = BTreeMap::new();
    for (i, concept) in arena.iter().enumerate() {
        let mut parents: BTreeSet<String> = concept
            .properties
            .iter()
            .filter(|(code, _)| code == "subsumedBy")
            .map(|(_, value)| value.clone())
            .collect();
        parents.extend(concept.nested_in.map(|p| codes[p].clone()));
        let property = |name: &str| {
            concept
                .properties
                .iter()
                .find(|(code, _)| code == name)
                .map(|(_, v)| v.clone())
        };
        let parsed = XmlConcept {
            display: concept.display.clone(),
            parents,
            not_selectable: property("notSelectable").as_deref() == Some("true"),
            status: property("status"),
        };
        if concepts.insert(codes[i].clone(), parsed).is_some() {
            return Err(format!("duplicate concept {}", codes[i]));
        }
    }
    Ok(CodeSystem {
        url,
        version,
        concepts,
    })
}

// ---------------------------------------------------------------------------------------------
// Relations from the XML

struct Hl7 {
    system: CodeSystem,
    /// Strict descendants of `PurposeOfUse`.
    descendants: BTreeSet<String>,
    /// Strict ancestors (any path) of every descendant of `PurposeOfUse`.
    ancestors: BTreeMap<String, BTreeSet<String>>,
    /// The descendants of `PurposeOfUse` the table must hold.
    expected: BTreeSet<String>,
}

fn hl7() -> Hl7 {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/hl7/ActReason.xml");
    let xml = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let system = read_code_system(&xml).unwrap_or_else(|e| panic!("scanning {path}: {e}"));
    assert_eq!(system.url.as_deref(), Some(PURPOSE_SYSTEM));
    assert_eq!(system.version.as_deref(), Some("4.0.0"));
    assert_eq!(
        system.concepts.len(),
        299,
        "the scanner should see every concept"
    );
    for (code, concept) in &system.concepts {
        for parent in &concept.parents {
            assert!(
                system.concepts.contains_key(parent),
                "{code}: parent {parent} missing"
            );
        }
    }

    let mut children: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (code, concept) in &system.concepts {
        for parent in &concept.parents {
            children
                .entry(parent.as_str())
                .or_default()
                .insert(code.as_str());
        }
    }
    let mut descendants = BTreeSet::new();
    let mut todo = vec![ROOT];
    while let Some(code) = todo.pop() {
        for &child in children.get(code).into_iter().flatten() {
            if descendants.insert(child.to_owned()) {
                todo.push(child);
            }
        }
    }
    assert!(!descendants.contains(ROOT), "{ROOT} is its own descendant");

    let mut ancestors = BTreeMap::new();
    for code in &descendants {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = vec![code];
        while let Some(c) = todo.pop() {
            for parent in &system.concepts[c].parents {
                if seen.insert(parent.clone()) {
                    todo.push(parent);
                }
            }
        }
        assert!(!seen.contains(code), "{code} is its own ancestor");
        ancestors.insert(code.clone(), seen);
    }

    for (code, reason) in REFUSED {
        assert!(
            descendants.contains(*code),
            "REFUSED {code} ({reason}) is not a PurposeOfUse code"
        );
    }
    let expected = descendants
        .iter()
        .filter(|code| {
            let concept = &system.concepts[*code];
            !concept.not_selectable
                && concept.status.as_deref() != Some("retired")
                && !REFUSED.iter().any(|(refused, _)| refused == code)
        })
        .cloned()
        .collect();
    Hl7 {
        system,
        descendants,
        ancestors,
        expected,
    }
}

fn codes(purposes: impl Iterator<Item = Purpose>) -> BTreeSet<String> {
    purposes.map(|p| p.code().to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn scanner_reads_the_constructs_used() {
    let xml = r#"<?xml version="1.0"?>
        <!-- a > comment -->
        <CodeSystem xmlns="http://hl7.org/fhir">
          <url value="u&amp;v"/>
          <concept>
            <code value="A"/>
            <display value='a &quot;x&quot; &#39;y&#39; &#xD;&#xA;z > w'/>
            <concept>
              <code value="B"/>
              <property><code value="notSelectable"/><valueBoolean value="true"/></property>
            </concept>
          </concept>
          <concept>
            <code value="C"/>
            <property>
              <code value="subsumedBy"/>
              <valueCode value="A"/>
            </property>
            <property><code value="subsumedBy"/><valueCode value="B"/></property>
            <property><code value="status"/><valueCode value="retired"/></property>
          </concept>
        </CodeSystem>"#;
    let system = read_code_system(xml).unwrap();
    assert_eq!(system.url.as_deref(), Some("u&v"));
    let a = &system.concepts["A"];
    assert_eq!(a.display.as_deref(), Some("a \"x\" 'y' \r\nz > w"));
    assert!(a.parents.is_empty() && !a.not_selectable && a.status.is_none());
    let b = &system.concepts["B"];
    assert_eq!(b.parents, BTreeSet::from(["A".to_owned()]));
    assert!(b.not_selectable);
    let c = &system.concepts["C"];
    assert_eq!(c.parents, BTreeSet::from(["A".to_owned(), "B".to_owned()]));
    assert_eq!(c.status.as_deref(), Some("retired"));
    assert!(read_code_system("<CodeSystem><concept></CodeSystem>").is_err());
    assert!(read_code_system("<CodeSystem><concept><code value=\"X\"/>").is_err());
}

/// (a) Every code in the table is a selectable, non-retired descendant of `PurposeOfUse`.
#[test]
fn table_codes_are_purpose_of_use_descendants() {
    let hl7 = hl7();
    for purpose in Purpose::all() {
        let code = purpose.code();
        assert!(
            hl7.system.concepts.contains_key(code),
            "{code} is not in the XML"
        );
        assert!(hl7.descendants.contains(code), "{code} is not under {ROOT}");
        assert!(
            hl7.expected.contains(code),
            "{code} is abstract, retired or refused"
        );
        assert_eq!(
            hl7.system.concepts[code].display.as_deref(),
            Some(purpose.display()),
            "display of {code}"
        );
    }
}

/// (b) Every selectable, non-retired descendant of `PurposeOfUse` (minus [`REFUSED`]) is accepted,
/// and nothing else in the code system is.
#[test]
fn every_purpose_of_use_code_is_accepted() {
    let hl7 = hl7();
    for code in &hl7.expected {
        let purpose = Purpose::parse(code).unwrap_or_else(|e| panic!("{code} refused: {e}"));
        assert_eq!(purpose.code(), code);
    }
    assert_eq!(codes(Purpose::all()), hl7.expected);
    assert_eq!(Purpose::all().count(), 62);

    for (code, concept) in &hl7.system.concepts {
        if hl7.expected.contains(code) {
            continue;
        }
        match Purpose::parse(code) {
            Ok(p) => panic!("{code} accepted as {p}"),
            Err(PurposeError::Abstract(c)) => {
                assert_eq!(&c, code);
                assert!(
                    concept.not_selectable,
                    "{code} refused as abstract but is selectable"
                );
            }
            Err(PurposeError::Unknown(c)) => assert_eq!(&c, code),
            Err(e) => panic!("{code}: unexpected {e:?}"),
        }
    }
}

/// (c) The abstract root is refused as abstract.
#[test]
fn purpose_of_use_itself_is_refused() {
    let hl7 = hl7();
    assert!(hl7.system.concepts[ROOT].not_selectable);
    assert_eq!(
        Purpose::parse(ROOT),
        Err(PurposeError::Abstract(ROOT.to_owned()))
    );
}

/// (d) Each code's parents are exactly its XML parents, minus the root.
#[test]
fn parents_match_the_xml() {
    let hl7 = hl7();
    for purpose in Purpose::all() {
        let code = purpose.code();
        let xml_parents = &hl7.system.concepts[code].parents;
        for parent in xml_parents {
            assert!(
                parent == ROOT || hl7.expected.contains(parent),
                "{code}: parent {parent} is neither {ROOT} nor a purpose"
            );
        }
        let expected: BTreeSet<String> = xml_parents
            .iter()
            .filter(|p| p.as_str() != ROOT)
            .cloned()
            .collect();
        assert_eq!(codes(purpose.parents()), expected, "parents of {code}");
        assert_eq!(
            purpose.parents().count() == 0,
            xml_parents.contains(ROOT),
            "{code}: top-level iff directly under {ROOT}"
        );
    }
}

/// (e) `covers` is the XML's reflexive-transitive closure, for every pair; `descendants` and
/// `is_break_glass` agree with it.
#[test]
fn covers_is_the_xml_closure() {
    let hl7 = hl7();
    let in_closure =
        |ancestor: &str, code: &str| ancestor == code || hl7.ancestors[code].contains(ancestor);
    let mut covered_pairs = 0;
    for granted in Purpose::all() {
        for requested in Purpose::all() {
            let expected = in_closure(granted.code(), requested.code());
            assert_eq!(
                granted.covers(requested),
                expected,
                "{granted} covers {requested}"
            );
            covered_pairs += usize::from(expected);
        }
        let expected: BTreeSet<String> = hl7
            .expected
            .iter()
            .filter(|code| in_closure(granted.code(), code))
            .cloned()
            .collect();
        assert_eq!(
            codes(granted.descendants()),
            expected,
            "descendants of {granted}"
        );
        let glass = in_closure("ETREAT", granted.code()) || in_closure("BTG", granted.code());
        assert_eq!(granted.is_break_glass(), glass, "{granted} break-glass");
    }
    assert!(covered_pairs > 62, "the hierarchy has depth");
    assert!(
        hl7.ancestors["BTG"].contains("ETREAT"),
        "BTG is nested under ETREAT in 4.0.0"
    );
}
