// deno-lint-ignore-file no-explicit-any
/**
 * @module DICOM character sets against pydicom: every character-set-affected string (PN as its
 * component groups, LO, SH, ST, LT, UT, UC, in sequences too) of every file of pydicom's charset
 * corpus, and of files written in the sets the corpus lacks, decoded by us as pydicom decodes it;
 * the synthetic files also as the Unicode text their bytes were made from. End to end: STOW-RS of
 * those files, and QIDO-RS, WADO-RS metadata and the FHIR Patient and ImagingStudy give the text.
 */
import assert from "node:assert/strict";
import {
  charsetFor,
  decodeLatin1,
  decodeValue,
  normalizeTerm,
} from "../../../dicom/codec/charset.ts";
import { parseDataSet, patientStudyAttributes } from "../../../dicom/codec/dataset.ts";
import { type DicomJson, firstString, toDicomJson } from "../../../dicom/codec/dicom_json.ts";
import { parseInstance } from "../../../dicom/codec/parse.ts";
import { backendTest, fhirJson } from "../../_harness.ts";
import { dicomJson, stow } from "../_dicomweb_util.ts";

type Values = Record<string, [string, unknown[]]>;
interface Reference {
  path: string;
  charset?: string | string[];
  values?: Values;
  /** pydicom could not read the file: skipped, with this reason. */
  error?: string;
  /** Synthetic files: the Unicode text the bytes were encoded from. */
  intended?: Values;
  /** A copy with fresh UIDs (the corpus files) or the file itself (synthetic), for STOW. */
  fresh?: string;
}

/** Where pydicom 2.3 reads other text than the bytes mean: [file, tag path, why]. */
const PYDICOM_WRONG: [string, string, string][] = [
  ...["00100010", "00081030", "00080080"].map((p): [string, string, string] => [
    "latin9.dcm",
    p,
    "pydicom does not know ISO_IR 203 and reads ISO 8859-1 (€ as ¤)",
  ]),
  ["iso2022_latin9.dcm", "00081030", "pydicom does not know ESC - b (ISO-IR 203)"],
  [
    "iso2022_jis_delimiter_bytes.dcm",
    "00100010",
    "pydicom splits a PN at the bytes 0x3D and 0x5C inside JIS X 0208 characters",
  ],
  ["iso2022_gb2312.dcm", "00100010", "pydicom keeps ESC $ ) A in the text (ISO 2022 IR 58)"],
  ["invalid_escape.dcm", "00081030", "pydicom keeps an unknown escape sequence as text"],
];
const wrong = new Map(PYDICOM_WRONG.map(([f, p, why]) => [`${f} ${p}`, why]));

const CHARSET_VRS = new Set(["PN", "LO", "SH", "ST", "LT", "UT", "UC"]);
const TEXT_VRS = new Set(["ST", "LT", "UT"]);

let reference: Promise<Record<string, Reference> | undefined> | undefined;

/** pydicom's reading of every file (run once); undefined where pydicom is not installed. */
function pydicomReference(): Promise<Record<string, Reference> | undefined> {
  reference ??= (async () => {
    const out = await Deno.makeTempDir({ prefix: "charsets-" });
    const helper = new URL("./_pydicom_strings.py", import.meta.url).pathname;
    let result;
    try {
      result = await new Deno.Command("/usr/bin/python3", {
        args: [helper, out],
        stdout: "piped",
        stderr: "piped",
      }).output();
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      result = undefined;
    }
    const stderr = result ? new TextDecoder().decode(result.stderr) : "no /usr/bin/python3";
    if (!result?.success && /No module named 'pydicom'|no \/usr\/bin\/python3/.test(stderr)) {
      assert.notEqual(Deno.env.get("CI"), "true", "pydicom is missing in CI");
      return undefined;
    }
    assert.ok(result?.success, stderr);
    return JSON.parse(new TextDecoder().decode(result!.stdout)).files;
  })();
  return reference;
}

/** Values as compared: LO/SH/UC trimmed; all empty is none; PN as its component groups. */
function normalize(vr: string, values: unknown[]): unknown[] {
  if (TEXT_VRS.has(vr)) return values.filter((v) => v !== "");
  const out = vr === "PN"
    ? values.map((v) => {
      const groups = Array.isArray(v)
        ? v as string[]
        : ["Alphabetic", "Ideographic", "Phonetic"].map((k) => (v as any)?.[k] ?? "");
      const joined = groups.join("=").trim().replace(/=+$/, "");
      return joined ? joined.split("=") : [];
    })
    : values.map((v) => String(v).trim());
  return out.every((v) => Array.isArray(v) ? v.length === 0 : v === "") ? [] : out;
}

/**
 * Our character-set-affected strings of a DICOM JSON object, by tag path; with `unknown`, the
 * paths of private attributes kept as UN (pydicom reads some as text by its private dictionary).
 */
function ourStrings(json: DicomJson, prefix = "", unknown?: Set<string>): Values {
  const out: Values = {};
  for (const [tag, attr] of Object.entries(json)) {
    const path = `${prefix}${tag}`;
    if (attr.vr === "SQ") {
      (attr.Value ?? []).forEach((item, i) =>
        Object.assign(out, ourStrings(item as DicomJson, `${path}/${i + 1}/`, unknown))
      );
    } else if (CHARSET_VRS.has(attr.vr)) {
      out[path] = [attr.vr, normalize(attr.vr, attr.Value ?? [])];
    } else if (attr.vr === "UN") {
      unknown?.add(path);
    }
  }
  return out;
}

function normalized(values: Values): Values {
  return Object.fromEntries(
    Object.entries(values).map(([p, [vr, v]]) => [p, [vr, normalize(vr, v)]]),
  );
}

/** What we must read from a file: pydicom's values, the intended text where pydicom errs. */
function expected(name: string, ref: Reference): Values {
  const want = normalized(ref.values!);
  for (const [path, v] of Object.entries(normalized(ref.intended ?? {}))) {
    if (wrong.has(`${name} ${path}`)) want[path] = v;
  }
  return want;
}

function decodeFile(bytes: Uint8Array): { json: DicomJson; warnings: string[] } {
  const warnings: string[] = [];
  return { json: toDicomJson(parseDataSet(bytes), { warnings }), warnings };
}

Deno.test("every string of every charset file reads as pydicom reads it; synthetic files as written", async () => {
  const files = await pydicomReference();
  if (!files) return;
  const skipped: string[] = [];
  const privateUn: string[] = [];
  let compared = 0;
  let corpus = 0;
  for (const [name, ref] of Object.entries(files)) {
    if (ref.error) {
      skipped.push(`${name}: ${ref.error}`);
      continue;
    }
    if (!ref.intended) corpus++;
    const unknown = new Set<string>();
    const ours = ourStrings(decodeFile(await Deno.readFile(ref.path)).json, "", unknown);
    const theirs = normalized(ref.values!);
    for (const path of unknown) {
      if (theirs[path]) (privateUn.push(`${name} ${path}`), delete theirs[path]);
    }
    for (const [path, [vr, v]] of Object.entries(theirs)) {
      const why = wrong.get(`${name} ${path}`);
      if (why) {
        // Kept honest: where pydicom is listed as wrong, it still is.
        assert.notDeepEqual(ours[path], [vr, v], `${name} ${path}: pydicom now agrees (${why})`);
        continue;
      }
      assert.deepEqual(ours[path], [vr, v], `${name} ${path} (${JSON.stringify(ref.charset)})`);
      compared++;
    }
    assert.deepEqual(Object.keys(ours).sort(), Object.keys(theirs).sort(), `${name}: elements`);
    for (const [path, want] of Object.entries(normalized(ref.intended ?? {}))) {
      assert.deepEqual(ours[path], want, `${name} ${path}: the text it was written from`);
    }
  }
  assert.deepEqual(skipped, [], "pydicom reads every file");
  // chrJapMulti and chrKoreanMulti: the AGFA private SH and LO that the files store as UN.
  assert.ok(privateUn.length <= 12, `private UN read as text by pydicom only: ${privateUn}`);
  assert.ok(corpus >= 17, `pydicom's corpus: ${corpus} files`);
  assert.ok(compared >= 200, `${compared} values compared`);
});

Deno.test("the comparison fails for a wrong character set: Latin-2 read as Latin-1 is £ukasiewicz^W±s", async () => {
  const files = await pydicomReference();
  if (!files) return;
  const ds = parseDataSet(await Deno.readFile(files["latin2.dcm"].path));
  const el = ds.elements.x00100010;
  const bytes = ds.byteArray.subarray(el.dataOffset, el.dataOffset + el.length);
  assert.equal(decodeValue(charsetFor("ISO_IR 100"), bytes, "PN").trimEnd(), "£ukasiewicz^W±s");
  assert.equal(decodeValue(charsetFor("ISO_IR 101"), bytes, "PN").trimEnd(), "Łukasiewicz^Wąs");
  // Every file of the corpus outside ASCII and Latin-1 differs from pydicom when read as Latin-1
  // (byte for byte: our ISO_IR 100 would still follow the escape sequences of chrH31).
  for (const name of ["chrArab", "chrGreek", "chrH31", "chrH32", "chrI2", "chrRuss", "chrX2"]) {
    const ref = files[`${name}.dcm`];
    const d = parseDataSet(await Deno.readFile(ref.path));
    const e = d.elements.x00100010;
    const latin1 = decodeLatin1(d.byteArray.subarray(e.dataOffset, e.dataOffset + e.length));
    const pn = normalize("PN", ref.values!["00100010"][1]);
    assert.notDeepEqual(normalize("PN", [latin1.trim().split("=")]), pn, name);
  }
});

Deno.test("the Patient and Study attributes copied into a SEG or SR are decoded with code extensions", async () => {
  const files = await pydicomReference();
  if (!files) return;
  const attrs = (name: string) =>
    patientStudyAttributes(parseDataSet(Deno.readFileSync(files[name].path)));
  assert.equal(attrs("chrH31.dcm").PatientName, "Yamada^Tarou=山田^太郎=やまだ^たろう");
  assert.equal(attrs("chrI2.dcm").PatientName, "Hong^Gildong=洪^吉洞=홍^길동");
  assert.equal(attrs("latin2.dcm").PatientName, "Łukasiewicz^Wąs");
  assert.equal(attrs("latin2.dcm").StudyDescription, "Zażółć gęślą jaźń");
});

Deno.test("unknown character sets and undefined bytes: U+FFFD, a warning, no exception", async () => {
  const files = await pydicomReference();
  if (files) {
    for (const name of ["unknown_charset.dcm", "invalid_utf8.dcm", "invalid_thai.dcm"]) {
      const { warnings } = decodeFile(await Deno.readFile(files[name].path));
      assert.equal(warnings.length, 1, `${name}: ${warnings}`);
    }
  }
  const cs = charsetFor("ISO_IR 999\\ISO 2022 IR 87");
  assert.deepEqual(cs.unknown, ["ISO_IR 999"]);
  const bytes = (...b: number[]) => new Uint8Array(b);
  assert.equal(cs.decode(bytes(0x41, 0xe9)), "Aé"); // the default repertoire, bytes as ISO 8859-1
  // A JIS X 0208 character cut short, an escape sequence cut short, an unknown one.
  assert.equal(cs.decode(bytes(0x1b, 0x24, 0x42, 0x3b)), "\uFFFD");
  assert.equal(cs.decode(bytes(0x41, 0x1b, 0x24)), "A\uFFFD");
  assert.equal(cs.decode(bytes(0x1b, 0x25, 0x47, 0x41)), "\uFFFDA");
  assert.equal(charsetFor("ISO_IR 192").decode(bytes(0xc3)), "\uFFFD");
  assert.equal(charsetFor("GB18030").decode(bytes(0xcd, 0xf5, 0x81)), "王\uFFFD");
  for (let i = 0; i < 2000; i++) {
    const random = crypto.getRandomValues(new Uint8Array(1 + (i % 40)));
    for (const set of ["ISO 2022 IR 6\\ISO 2022 IR 87\\ISO 2022 IR 159", "\\ISO 2022 IR 149"]) {
      for (const vr of ["PN", "LO", "LT", "CS"]) decodeValue(charsetFor(set), random, vr);
    }
  }
});

Deno.test("defined terms: misspellings normalized; one decoder per Specific Character Set", () => {
  assert.equal(normalizeTerm("iso_ir100"), "ISO_IR 100");
  assert.equal(normalizeTerm("ISO IR 101"), "ISO_IR 101");
  assert.equal(normalizeTerm("ISO-2022-IR-87"), "ISO 2022 IR 87");
  assert.equal(normalizeTerm("utf-8"), "ISO_IR 192");
  assert.equal(charsetFor("ISO_IR 101"), charsetFor("ISO_IR 101"));
  // JIS X 0208 by the JIS standard's Unicode mapping (WAVE DASH), as pydicom and iconv read it.
  const jis = charsetFor("\\ISO 2022 IR 87");
  assert.equal(jis.decode(new Uint8Array([0x1b, 0x24, 0x42, 0x21, 0x41, 0x1b, 0x28, 0x42])), "〜");
  // Default-repertoire VRs are not read through the character set.
  assert.equal(decodeValue(charsetFor("ISO_IR 192"), new Uint8Array([0xc3, 0xa9]), "CS"), "Ã©");
});

const E2E = [
  "chrH31.dcm",
  "chrH32.dcm",
  "chrI2.dcm",
  "chrX1.dcm",
  "chrX2.dcm",
  "chrArab.dcm",
  "chrGreek.dcm",
  "chrHbrw.dcm",
  "chrRuss.dcm",
  "chrFrenMulti.dcm",
  "chrJapMulti.dcm",
  "chrKoreanMulti.dcm",
  "latin2.dcm",
  "thai.dcm",
  "latin9.dcm",
  "iso2022_latin1_greek.dcm",
  "iso2022_jis0212.dcm",
  "iso2022_gb2312.dcm",
  "iso2022_korean_g1.dcm",
];

backendTest(
  "STOW-RS of charset files: QIDO-RS, WADO-RS metadata and FHIR give pydicom's Unicode",
  async (ctx) => {
    const files = await pydicomReference();
    if (!files) return;
    const parts = E2E.map((name) => {
      assert.ok(files[name].fresh, `${name}: a fresh copy`);
      return Deno.readFileSync(files[name].fresh!);
    });
    const res = await stow(ctx, parts);
    assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 500));
    for (const [i, name] of E2E.entries()) {
      const p = parseInstance(parts[i]);
      const want = expected(name, files[name]);
      const rows = await dicomJson(
        ctx,
        `studies?StudyInstanceUID=${p.studyUid}&includefield=00100010`,
      );
      assert.equal(rows.status, 200);
      assert.equal(rows.body.length, 1, name);
      assert.deepEqual(
        normalize("PN", rows.body[0]["00100010"]?.Value ?? []),
        want["00100010"][1],
        `${name}: QIDO-RS PatientName`,
      );
      const meta = await dicomJson(
        ctx,
        `studies/${p.studyUid}/series/${p.seriesUid}/instances/${p.sopUid}/metadata`,
      );
      assert.equal(meta.status, 200, name);
      const unknown = new Set<string>();
      const got = ourStrings(meta.body[0], "", unknown);
      for (const path of unknown) delete want[path];
      assert.deepEqual(got, want, `${name}: WADO-RS metadata`);
    }
    const latin2 = parseInstance(parts[E2E.indexOf("latin2.dcm")]).studyUid;
    const found = await dicomJson(ctx, `studies?PatientName=${encodeURIComponent("Łukasiewicz*")}`);
    assert.ok(found.body.some((r: any) => r["0020000D"].Value[0] === latin2), "QIDO-RS match");
    const pn = found.body.find((r: any) => r["0020000D"].Value[0] === latin2)["00100010"];
    assert.deepEqual(pn, { vr: "PN", Value: [{ Alphabetic: "Łukasiewicz^Wąs" }] });

    await ctx.services.dicom.deps.studySync.flush();
    const q = encodeURIComponent(`urn:dicom:uid|urn:oid:${latin2}`);
    const studies = await fhirJson(ctx, "GET", `ImagingStudy?identifier=${q}`);
    assert.equal(studies.body.entry?.length, 1, JSON.stringify(studies.body));
    const study = studies.body.entry[0].resource;
    assert.equal(study.description, "Zażółć gęślą jaźń");
    const patient = await fhirJson(ctx, "GET", study.subject.reference);
    assert.equal(patient.status, 200);
    assert.deepEqual(patient.body.name?.[0]?.family, "Łukasiewicz");
    assert.deepEqual(patient.body.name?.[0]?.given, ["Wąs"]);
  },
);

backendTest(
  "STOW-RS of undecodable strings: stored with a warning, U+FFFD in the metadata",
  async (ctx) => {
    const files = await pydicomReference();
    if (!files) return;
    for (const name of ["invalid_utf8.dcm", "invalid_escape.dcm", "unknown_charset.dcm"]) {
      const bytes = Deno.readFileSync(files[name].fresh!);
      const res = await stow(ctx, [bytes]);
      assert.equal(res.status, 202, `${name}: ${JSON.stringify(res.body).slice(0, 300)}`);
      assert.match(res.headers.get("warning") ?? "", /character set|Character Set/, name);
      const p = parseInstance(bytes);
      const meta = await dicomJson(
        ctx,
        `studies/${p.studyUid}/series/${p.seriesUid}/instances/${p.sopUid}/metadata`,
      );
      assert.deepEqual(ourStrings(meta.body[0])["00081030"], files[name].intended!["00081030"]);
    }
  },
);

Deno.test("a name written only in ideographic or phonetic characters is still the patient's name", () => {
  const pn = (v: Record<string, string>) => ({ "00100010": { vr: "PN", Value: [v] } });
  assert.equal(
    firstString(pn({ Alphabetic: "Yamada^Taro", Ideographic: "山田^太郎" }), "00100010"),
    "Yamada^Taro",
  );
  assert.equal(firstString(pn({ Ideographic: "山田^太郎" }), "00100010"), "山田^太郎");
  assert.equal(firstString(pn({ Phonetic: "やまだ^たろう" }), "00100010"), "やまだ^たろう");
  assert.equal(firstString(pn({}), "00100010"), undefined);
});
