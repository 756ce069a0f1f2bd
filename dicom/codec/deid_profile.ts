/**
 * @module PS3.15 Annex E, Table E.1-1 (edition 2026d) as data: for every attribute the table lists,
 * the action of the Basic Application Level Confidentiality Profile and, where the table has one,
 * the action of the Retain Longitudinal Temporal Information with Modified Dates Option (`m`: C)
 * and of the Clean Descriptors Option (`c`: C). The other option columns (Retain UIDs, Device or
 * Institution Identity, Patient Characteristics, Full Dates, Safe Private, Clean Structured
 * Content, Clean Graphics) are not implemented and not transcribed. Group patterns: curve data
 * (50xx,xxxx), overlay data and comments (60xx,3000 / 60xx,4000); private attributes (odd groups)
 * are removed by the engine (`deid.ts`), the profile having no Retain Safe Private Option here.
 */

/** The action codes of Table E.1-1 (PS3.15 E.1.1). */
export type BasicAction =
  | "D"
  | "Z"
  | "X"
  | "K"
  | "C"
  | "U"
  | "Z/D"
  | "X/Z"
  | "X/D"
  | "X/Z/D"
  | "X/Z/U*";

export interface ProfileRow {
  /** GGGGEEEE, upper-case hex; `xx` in a pattern row. */
  tag: string;
  basic: BasicAction;
  /** C in the Rtn. Long. Modif. Dates Opt. column. */
  modifiedDates: boolean;
  /** C in the Clean Desc. Opt. column. */
  cleanDescriptors: boolean;
  /** Not in the table: an addition of this implementation (see LOCAL). */
  local?: boolean;
}

/**
 * `TAG ACTION [FLAGS]` separated by `;`, in the table's order (by attribute name). FLAGS: `m` the
 * Modified Dates Option cleans (shifts) it, `c` the Clean Descriptors Option cleans it.
 */
const TABLE = `
00080050 Z; 00184000 X c; 00400556 X c; 00400555 X/Z; 00080022 X/Z m; 0008002A X/Z/D m
00181400 X/D c; 001811BB D c; 00189424 X c; 00080032 X/Z m; 00080017 U; 00404035 X
001021B0 X c; 0040A353 X; 00380010 X; 00380020 X m; 00081084 X c; 00081080 X c
00380021 X m; 00001000 X; 00102110 X c; 0040B034 X m; 006A0006 X c; 006A0005 D c
006A0003 D; 00440004 X m; 40000010 X; 00440104 D m; 00440105 X m; 04000562 D m
0040A078 X; 22000005 X/Z; 300A00C3 X c; 300C0127 D m; 300A00DD X c; 00101081 X
0014407E X m; 00181203 Z m; 0014407C X m; 0016004D X; 00181007 X; 04000115 D
04000310 X m; 003A020C X c; 003A0203 X c; 00120060 Z; 00120082 X; 00120081 D
00120020 D; 00120021 Z; 00120072 X c; 00120071 X; 00120030 Z; 00120031 Z
00120010 D; 00120040 D; 00120042 D; 00120051 X c; 00120050 Z; 00400310 X c
00400280 X c; 300A02EB X c; 00209161 U; 3010000F Z c; 30100017 Z c; 30100006 U
00403001 X; 30100013 U; 0008009C Z; 0008009D X; 0050001B X; 0040051A X c
00400512 D; 00700086 X; 00700084 Z/D; 00080023 Z/D m; 0040A730 D; 00080033 Z/D m
00080107 D m; 00080106 D m; 00180010 Z/D c; 00181042 X m; 00181043 X m; 0018A002 X m
0018A003 X c; 00102150 X; 21000040 X m; 21000050 X m; 0040A307 X; 00380300 X
50xxxxxx X; 00080025 X m; 00080035 X m; 0040A07C X; FFFCFFFC X; 0040A121 D m
0040A110 X m; 00181205 X m; 00181200 X m; 0018700C X/D m; 00181204 X m; 00181012 X m
0040A120 D m; 00181202 X m; 00189701 D m; 0018937F X c; 00082111 X c; 21000140 D
0018700A X/D; 3010001B Z; 00500020 X; 3010002D D; 00181000 X/Z/D; 0016004B X c
00181002 U; 04000105 D m; FFFAFFFA X; 04000100 U; 00209164 U; 00380030 X m
00380040 X c; 00380032 X m; 300A079A X c; 0040E012 X; 4008011A X; 40080119 X
3004007F X c; 300A0016 X c; 300A0013 U; 3010006E U; 00686226 D m; 0040A034 X m
0040A035 X m; 00420011 D; 00189517 X/D m; 30100037 X c; 30100035 D c; 30100038 D c
30100036 X c; 300A0676 X c; 00120087 X m; 00120086 X m; 00102160 X; 00102161 X
00102162 X; 00189804 D m; 00404011 X m; 00080058 U; 0070031A U; 00402017 Z
003A032B X c; 0040A023 X m; 0040A024 X m; 30080054 X/D m; 300A0196 X c; 00340002 D
00340001 D; 3010007F Z c; 300A0072 X c; 00189074 D m; 00209158 X c; 00200052 U
00340007 D m; 00189151 D m; 00189623 D m; 00181008 X; 00100044 X; 00100045 X c
00100041 X; 00181005 X; 00160076 X; 00160075 X; 0016008C X; 0016008D X m
00160088 X; 00160087 X; 0016008A X; 00160089 X; 00160084 X; 00160083 X
00160086 X; 00160085 X; 0016008E X; 0016007B X; 00160081 X; 00160080 X
00160072 X; 00160071 X; 00160074 X; 00160073 X; 00160082 X; 0016007A X
0016008B X; 00160078 X; 0016007D X; 0016007C X; 00160079 X; 00160077 X
0016007F X; 0016007E X; 00160070 X; 00700001 D; 0072000A D m; 00181011 X
00081304 X c; 0040E004 X m; 00404037 X; 00404036 X; 00880200 X; 00084000 X c
00204000 X c; 00284000 X; 00402400 X c; 003A0314 D m; 40080300 X c; 00686270 D m
00080015 X m; 00080012 X/D m; 00080013 X/Z/D m; 00080014 U; 04000600 X; 00080081 X
00081040 X; 00081041 X; 00080082 X/Z/D; 00080080 X/Z/D; 00189919 Z/D m; 00101050 X
30100085 X m; 3010004D X/D m; 3010004C X/D m; 00401011 X; 300A0741 D m; 300A0742 D c
300A0783 D c; 40080112 X m; 40080113 X m; 40080111 X; 4008010C X; 40080115 X c
40080200 X; 40080202 X; 40080100 X m; 40080101 X m; 40080102 X; 4008010B X c
4008010A X; 40080108 X m; 40080109 X m; 00180035 X m; 00180027 X m; 00083010 U
00402004 X m; 00380011 X; 00380014 X; 00120022 X; 00120073 X; 00120032 X
00120041 X; 00120043 X; 00120055 X; 00100021 X; 00380061 X; 00380064 X
00400513 Z; 00400562 Z; 00402005 X m; 22000002 X/Z c; 00281214 U; 001021D0 X m
0016004F X; 00160050 X; 00160051 X; 0016004E X; 00500021 X c; 04000404 X
0016002B X c; 0018100B U; 30100043 Z; 00020003 U; 00102000 X c; 00101090 X
00101080 X; 04000550 X; 00203403 X m; 00203406 X; 00203405 X m; 00203401 X
04000563 D; 0040B03F X c; 0040B03B X c; 30080056 X/D m; 0018937B X c; 003A0020 X c
003A0310 U; 00081060 X; 00401010 X; 00100012 X; 00100013 X; 00081000 X
04000552 X; 04000551 X; 0040A192 X m; 0040A032 X/D m; 0040A033 X m; 0040A402 U
0040A193 X m; 0040A171 U; 00102180 X c; 00081072 X/D; 00081070 X/Z/D; 00402010 X
00402011 X; 00402008 X; 00402009 X; 04000561 X; 21000070 X; 00120023 X
00101000 X; 00101002 X; 00101001 X; 60xx4000 X; 60xx3000 X; 00080024 X m
00080034 X m; 300A0760 D m; 00281199 U; 0040A07A X; 0040A082 Z m; 00101040 X
00101010 X; 00100030 Z; 00101005 X; 00100032 X; 00380400 X; 00100050 X
00101060 X; 00100010 Z; 00100101 X; 00100102 X; 001021F0 X; 00100040 Z
00102203 X/Z; 00101020 X; 00102155 X; 00102154 X; 00101030 X; 00104000 X c
00100020 Z/D; 300A0794 X c; 300A0650 U; 00380500 X c; 00401004 X; 300A0792 X c
300A078E X c; 00400243 X; 00400254 X c; 00400250 X m; 00404051 X m; 00400251 X m
00400253 X; 00400244 X m; 00404050 X m; 00400245 X m; 00400241 X; 00404030 X
00400242 X; 00404028 X; 00081050 X; 00081052 X; 00401102 X; 00401104 X
00401103 X; 00401101 D; 0040A123 D; 00100011 X; 00081048 X; 00081049 X
00081062 X; 40080114 X; 00402016 Z; 00181004 X; 30020123 X c; 30020121 X c
001021C0 X; 00400012 X; 300A000E X c; 3010007B Z c; 30100081 Z c; 00700082 X m
00700083 X m; 00701101 U; 00701102 U; 00081302 X c; 00081301 X c; 30100061 X c
00404052 X m; 0044000B X m; 00100015 X; 00100016 X c; 00181030 X/D c; 00081088 X c
00200027 X c; 00080019 U; 300A0619 D c; 300A0623 D c; 300A067D Z c; 300A067C D c
00181078 X m; 00181072 X m; 00181079 X m; 00181073 X m; 300C0113 X c; 0040100A X c
00321030 X c; 3010005C Z c; 04000565 D c; 00402001 X c; 00401002 X c; 00321066 X c
00321067 X c; 00741234 X; 300A073A D m; 3010000B U; 0040A13A D m; 04000402 X
300A0083 U; 3010006F U; 30100031 U; 30060024 U; 00404023 U; 00081140 X/Z/U*
0040A172 U; 00380004 X; 00101100 X; 00081120 X; 00081111 X/Z/D; 04000403 X
00081155 U; 00041511 U; 00081110 X/Z; 300A0785 U; 00080092 X; 00080090 Z
00080094 X; 00080096 X; 00102152 X; 300600C2 U; 00400275 X c; 00321070 X c
00401400 X c; 00321060 X/Z c; 00401001 X; 00401005 X; 00189937 X c; 00001001 U
00741236 X; 00321032 X; 00321033 X c; 00189185 X c; 00102299 X; 00102297 X
40084000 X c; 40080118 X; 40080040 X; 40080042 X; 00080054 X; 300E0004 Z m
300E0008 X/Z; 300E0005 Z m; 3006004D X; 3006002D X m; 30060028 X c; 30060038 X c
300600A6 Z; 3006004E X; 30060026 Z c; 3006002E X m; 30060088 X c; 30060085 X c
300A0615 Z; 300A0611 Z; 3010005A Z c; 300A0006 X/D m; 300A0004 X c; 300A0002 D c
300A0003 X c; 300A0007 X/D m; 30100054 D c; 300A062A D c; 30100056 X/D c; 3010003B U
30080162 D m; 30080164 D m; 30080166 D m; 30080168 D m; 0038001A X m; 0038001B X m
0038001C X m; 0038001D X m; 00404034 X; 0038001E X; 00400006 X; 0040000B X
00400007 X c; 00400004 X m; 00400005 X m; 00404008 X m; 00400009 X; 00400011 X
00404010 X m; 00400002 X m; 00404005 X m; 00400003 X m; 00400001 X; 00404027 X
00400010 X; 00404025 X; 00321020 X; 00321021 X; 00321000 X m; 00321001 X m
00321010 X m; 00321011 X m; 00181010 X; 00081303 X c; 0040B036 X m; 0072005E D
0072005F D; 00720061 D m; 00720063 D m; 00720066 D c; 00720068 D c; 00720065 D
0072006A D; 0072006C D c; 0072006E D c; 0072006B D m; 0072006D D; 00720071 D
00720070 D c; 00080021 X/D m; 0008103E X c; 0020000E U; 00080031 X/D m; 00380062 X c
00380060 X; 300A01B2 X c; 00100046 X; 00100042 X c; 00100047 X; 00100043 X
300A01A6 X c; 004006FA X; 001021A0 X; 01000420 X m; 00080018 U; 30100015 U
0018936A D m; 00640003 U; 00340005 D; 00082112 X/Z/U*; 300A0216 X; 04000564 Z
30080105 X/Z; 00189369 D m; 300A022C D m; 300A022E D m; 00380050 X; 0040050A X
00400602 X c; 00400551 D; 00400610 Z; 00400600 X c; 00400554 U; 00189516 X/D m
00080055 X; 00081010 X/Z/D; 00880140 U; 30060008 Z m; 30060006 X c; 30060002 D c
30060004 X c; 30060009 Z m; 00321040 X m; 00321041 X m; 00324000 X c; 00321050 X m
00321051 X m; 00080020 Z m; 00081030 X c; 00200010 Z; 00320012 X; 0020000D U
00320034 X m; 00320035 X m; 00080030 Z m; 00320032 X m; 00320033 X m; 00440010 X m
00200200 U; 300A0054 U; 00182042 U; 0040A354 X; 0040DB0D U; 0040DB0C U
0040DB07 X m; 0040DB06 X m; 40004000 X; 20300020 X; 00100014 X; 0040A122 D m
0040A112 X m; 00181201 X m; 0018700E X/D m; 00181014 X m; 00080201 X m; 00880910 X
00880912 X; 00880906 X; 00880904 X; 00620021 U; 00081195 U; 00185011 X
30080024 D m; 30080025 D m; 30080250 X/D m; 300A00B2 X/Z; 300A0608 D c; 300A0609 U
300A0700 U; 30100077 X/D c; 300A000B X c; 3010007A Z c; 30080251 X/D m; 300A0736 D m
300A0734 D c; 0018100A X; 0040A124 U; 00700006 D c; 00181009 X; 30100033 D c
30100034 D c; 0040A352 X; 0040A358 X; 0040A030 D m; 0040A088 Z; 0040A075 D
0040A073 D; 0040A027 D; 00384000 X c; 0040B020 X/D; 003A0329 X c; 00189371 D
00189373 X; 00189367 D
`;

/**
 * Additions of this implementation (PS3.15 E.1.1 Note 1: the table may not be sufficient): the
 * Text Value of SR TEXT content items (free text, Type 1 there) is replaced by a dummy, or cleaned
 * under the Clean Descriptors Option.
 */
const LOCAL = `0040A160 D c`;

function parse(text: string, local: boolean): ProfileRow[] {
  return text.split(/[;\n]/).map((s) => s.trim()).filter(Boolean).map((entry) => {
    const [tag, basic, flags = ""] = entry.split(/\s+/);
    return {
      tag,
      basic: basic as BasicAction,
      modifiedDates: flags.includes("m"),
      cleanDescriptors: flags.includes("c"),
      ...(local ? { local } : {}),
    };
  });
}

/** Every row of Table E.1-1 transcribed here, then the local additions. */
export const PROFILE_ROWS: readonly ProfileRow[] = [...parse(TABLE, false), ...parse(LOCAL, true)];

const BY_TAG = new Map(PROFILE_ROWS.filter((r) => !r.tag.includes("x")).map((r) => [r.tag, r]));
const CURVE = PROFILE_ROWS.find((r) => r.tag === "50xxxxxx")!;
const OVERLAY_DATA = PROFILE_ROWS.find((r) => r.tag === "60xx3000")!;
const OVERLAY_COMMENTS = PROFILE_ROWS.find((r) => r.tag === "60xx4000")!;

/** Repeating groups (50xx curves, 60xx overlays): an even group in 0x5000–0x501E / 0x6000–0x601E. */
export function repeatingGroup(tag: string): "curve" | "overlay" | undefined {
  const group = parseInt(tag.slice(0, 4), 16);
  if (group % 2) return undefined;
  if (group >= 0x5000 && group <= 0x501e) return "curve";
  if (group >= 0x6000 && group <= 0x601e) return "overlay";
  return undefined;
}

/** The row of Table E.1-1 that applies to `tag` (GGGGEEEE), if any; private tags have none. */
export function profileRow(tag: string): ProfileRow | undefined {
  const t = tag.toUpperCase();
  const row = BY_TAG.get(t);
  if (row) return row;
  const repeating = repeatingGroup(t);
  if (repeating === "curve") return CURVE;
  if (repeating === "overlay") {
    if (t.endsWith("3000")) return OVERLAY_DATA;
    if (t.endsWith("4000")) return OVERLAY_COMMENTS;
  }
  return undefined;
}

/** The options this implementation supports, with their CID 7050 codes (PS3.16). */
export interface DeidOptions {
  /** Retain Longitudinal Temporal Information with Modified Dates Option (113107). */
  modifiedDates: boolean;
  /** Clean Descriptors Option (113105). */
  cleanDescriptors: boolean;
}

/** What the engine does with one attribute. */
export type Resolved =
  | "remove"
  | "empty"
  | "dummy"
  | "uid"
  | "keep"
  /** Keep a sequence and apply the profile to its items (K, U* and D of a sequence). */
  | "recurse"
  | "shift"
  | "clean";

/**
 * Compound codes need the IOD's attribute Type, which this engine does not track. A zero-length
 * value is conformant wherever removal is (Type 3) and where a Type 2 attribute is required, so
 * X/Z, X/Z/D and Z/D become Z; X/D becomes X. These attributes get a dummy (D) instead: Type 1 in
 * IODs this service stores (checked with dciodvfy on pydicom's corpus), or, for the Patient ID, a
 * per-export pseudonym so that the studies of different patients stay apart.
 */
const DUMMY_INSTEAD = new Set([
  "00100020", // Patient ID (Z/D)
  "00181000", // Device Serial Number (X/Z/D): Type 1 in Enhanced General Equipment
  "00080023", // Content Date (Z/D): Type 1 in SR documents
  "00080033", // Content Time (Z/D): Type 1 in SR documents
]);

/** What to do with an attribute of `row` (an option's C overriding the Basic Profile). */
export function resolve(row: ProfileRow, vr: string, options: DeidOptions): Resolved {
  if (options.modifiedDates && row.modifiedDates) {
    if (vr === "DA" || vr === "DT") return "shift";
    // Shifting by whole days leaves times of day and time zones as they were.
    if (vr === "TM" || vr === "SH") return "keep";
    // A date in another VR (a binary timestamp) cannot be shifted: the Basic Profile's action.
  }
  if (options.cleanDescriptors && row.cleanDescriptors) return vr === "SQ" ? "recurse" : "clean";
  const dummy = DUMMY_INSTEAD.has(row.tag);
  switch (row.basic) {
    case "X":
      return "remove";
    case "Z":
      return "empty";
    case "D":
      return vr === "SQ" ? "recurse" : vr === "UI" ? "uid" : "dummy";
    case "U":
      return "uid";
    case "K":
      return vr === "SQ" ? "recurse" : "keep";
    case "C":
      return vr === "SQ" ? "recurse" : "clean";
    case "X/Z/U*":
      // The references stay (with replaced UIDs): they are Type 1C in several IODs.
      return "recurse";
    case "X/D":
      return dummy ? "dummy" : "remove";
    default:
      // Z/D, X/Z, X/Z/D
      return dummy ? "dummy" : "empty";
  }
}
