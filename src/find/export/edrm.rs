//! The EDRM XML 1.2 load file: one `Document` per DOCID with its native (and text) file, its
//! custodian and the load file's fields as tags, and an `Attachment` relationship per family
//! member.

use std::io::{self, Write};

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, Event};

use super::Doc;

/// Writes the EDRM XML of `docs` (`batch` names the production).
///
/// # Errors
/// Writing failed.
pub fn write(out: impl Write, batch: &str, docs: &[Doc]) -> io::Result<()> {
    let mut xml = Writer::new_with_indent(out, b' ', 2);
    xml.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let mut root = BytesStart::new("Root");
    root.push_attribute(("MajorVersion", "1"));
    root.push_attribute(("MinorVersion", "2"));
    root.push_attribute((
        "Description",
        "recarch export: Microsoft Teams recordings, transcripts and contacts",
    ));
    root.push_attribute(("Locale", "en-US"));
    root.push_attribute(("DataInterchangeType", "Update"));
    xml.write_event(Event::Start(root))?;
    let mut b = BytesStart::new("Batch");
    b.push_attribute(("name", batch));
    xml.write_event(Event::Start(b))?;
    xml.write_event(Event::Start(BytesStart::new("Documents")))?;
    for doc in docs {
        write_document(&mut xml, doc)?;
    }
    xml.write_event(Event::End(BytesEnd::new("Documents")))?;
    let relationships: Vec<(&str, &str)> = docs
        .iter()
        .filter_map(|d| d.parent.as_deref().map(|p| (p, d.doc_id.as_str())))
        .collect();
    if !relationships.is_empty() {
        xml.write_event(Event::Start(BytesStart::new("Relationships")))?;
        for (parent, child) in relationships {
            let mut r = BytesStart::new("Relationship");
            r.push_attribute(("Type", "Attachment"));
            r.push_attribute(("ParentDocId", parent));
            r.push_attribute(("ChildDocId", child));
            xml.write_event(Event::Empty(r))?;
        }
        xml.write_event(Event::End(BytesEnd::new("Relationships")))?;
    }
    xml.write_event(Event::End(BytesEnd::new("Batch")))?;
    xml.write_event(Event::End(BytesEnd::new("Root")))?;
    xml.into_inner().write_all(b"\n")
}

fn write_document<W: Write>(xml: &mut Writer<W>, doc: &Doc) -> io::Result<()> {
    let mut d = BytesStart::new("Document");
    d.push_attribute(("DocID", doc.doc_id.as_str()));
    d.push_attribute(("DocType", "File"));
    d.push_attribute(("MimeType", doc.media_type.as_str()));
    xml.write_event(Event::Start(d))?;
    xml.write_event(Event::Start(BytesStart::new("Files")))?;
    let native = doc.copied.as_ref();
    external_file(
        xml,
        "Native",
        "NATIVES",
        &doc.native_name(),
        doc.size,
        native.map(|c| c.md5.as_str()).unwrap_or_default(),
    )?;
    if let Some(text) = native.and_then(|c| c.text.as_ref()) {
        external_file(xml, "Text", "TEXT", &doc.text_name(), text.size, &text.md5)?;
    }
    xml.write_event(Event::End(BytesEnd::new("Files")))?;
    xml.write_event(Event::Start(BytesStart::new("Locations")))?;
    xml.write_event(Event::Start(BytesStart::new("Location")))?;
    text_element(xml, "Custodian", &doc.custodian)?;
    text_element(xml, "LocationURI", &doc.manifest)?;
    xml.write_event(Event::End(BytesEnd::new("Location")))?;
    xml.write_event(Event::End(BytesEnd::new("Locations")))?;
    xml.write_event(Event::Start(BytesStart::new("Tags")))?;
    for (name, kind, value) in doc.tags() {
        if value.is_empty() {
            continue;
        }
        let mut t = BytesStart::new("Tag");
        t.push_attribute(("TagName", name));
        t.push_attribute(("TagDataType", kind));
        t.push_attribute(("TagValue", value.as_str()));
        xml.write_event(Event::Empty(t))?;
    }
    xml.write_event(Event::End(BytesEnd::new("Tags")))?;
    xml.write_event(Event::End(BytesEnd::new("Document")))
}

fn external_file<W: Write>(
    xml: &mut Writer<W>,
    file_type: &str,
    dir: &str,
    name: &str,
    size: u64,
    md5: &str,
) -> io::Result<()> {
    let mut f = BytesStart::new("File");
    f.push_attribute(("FileType", file_type));
    xml.write_event(Event::Start(f))?;
    let mut e = BytesStart::new("ExternalFile");
    e.push_attribute(("FilePath", dir));
    e.push_attribute(("FileName", name));
    e.push_attribute(("FileSize", size.to_string().as_str()));
    e.push_attribute(("Hash", md5));
    xml.write_event(Event::Empty(e))?;
    xml.write_event(Event::End(BytesEnd::new("File")))
}

fn text_element<W: Write>(xml: &mut Writer<W>, name: &str, text: &str) -> io::Result<()> {
    xml.write_event(Event::Start(BytesStart::new(name)))?;
    xml.write_event(Event::Text(quick_xml::events::BytesText::new(text)))?;
    xml.write_event(Event::End(BytesEnd::new(name)))
}
