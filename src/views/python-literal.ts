/**
 * The subset of Python literals that NumPy writes in a `.npy` header
 * (`repr()` of a dict of strings, ints, bools, tuples and lists): a small,
 * bounded parser (no evaluation, limited nesting) and the matching `repr`.
 * Used by ./npy.ts; the header is untrusted, so every failure is an Error
 * with the position, which the caller turns into ERR_CORRUPT.
 */

/** Nesting a literal may use before it is refused. */
const MAX_LITERAL_DEPTH = 32;


/** A Python tuple (lists are JS arrays, dicts are Maps, ints are bigints). */
export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}
export type PyValue = string | bigint | boolean | null | PyValue[] | PyTuple | Map<string, PyValue>;

/** Parses the subset of Python literals that `repr()` of a header produces: dicts, lists, tuples, strings, ints, True/False/None. */
export function parsePython(text: string): PyValue {
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`${what} at character ${i}`);
  };
  const skip = () => {
    while (i < text.length && (text[i] === " " || text[i] === "\n" || text[i] === "\t" || text[i] === "\r")) i++;
  };
  const value = (depth: number): PyValue => {
    if (depth > MAX_LITERAL_DEPTH) fail("nesting too deep");
    skip();
    const c = text[i];
    if (c === "{") {
      i++;
      const map = new Map<string, PyValue>();
      for (;;) {
        skip();
        if (text[i] === "}") { i++; return map; }
        const key = value(depth + 1);
        if (typeof key !== "string") fail("a dict key that is not a string");
        skip();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        if (map.has(key as string)) fail(`key '${key as string}' twice`);
        map.set(key as string, value(depth + 1));
        skip();
        if (text[i] === ",") i++;
        else if (text[i] !== "}") fail("expected ',' or '}'");
      }
    }
    if (c === "[" || c === "(") {
      const close = c === "[" ? "]" : ")";
      i++;
      const items: PyValue[] = [];
      let comma = false;
      for (;;) {
        skip();
        if (text[i] === close) { i++; break; }
        items.push(value(depth + 1));
        skip();
        comma = false;
        if (text[i] === ",") { i++; comma = true; }
        else if (text[i] !== close) fail(`expected ',' or '${close}'`);
      }
      // (x) is x in Python; (x,) is a tuple.
      if (c === "(") return items.length === 1 && !comma ? items[0]! : new PyTuple(items);
      return items;
    }
    if (c === "'" || c === '"') {
      i++;
      let s = "";
      while (i < text.length && text[i] !== c) {
        if (text[i] === "\\") {
          const e = text[i + 1];
          if (e === "x" || e === "u") {
            const n = e === "x" ? 2 : 4;
            const hex = text.slice(i + 2, i + 2 + n);
            if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== n) fail("a bad escape");
            s += String.fromCharCode(parseInt(hex, 16));
            i += 2 + n;
            continue;
          }
          const simple: Record<string, string> = { "\\": "\\", "'": "'", '"': '"', n: "\n", t: "\t", r: "\r", "0": "\0" };
          if (e === undefined || !(e in simple)) fail("an unknown escape");
          s += simple[e!];
          i += 2;
        } else {
          s += text[i++];
        }
      }
      if (text[i] !== c) fail("an unterminated string");
      i++;
      return s;
    }
    const word = /^(True|False|None|-?\d+L?)/.exec(text.slice(i, i + 32));
    if (!word) return fail("an unexpected character");
    i += word[0].length;
    if (word[0] === "True") return true;
    if (word[0] === "False") return false;
    if (word[0] === "None") return null;
    return BigInt(word[0].replace("L", ""));
  };
  const result = value(0);
  skip();
  if (i !== text.length) fail("trailing characters");
  return result;
}

/** Python's repr of a literal (for headers and for `dtype`). */
export function pyRepr(v: PyValue): string {
  if (typeof v === "string") return `'${v.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "boolean") return v ? "True" : "False";
  if (v === null) return "None";
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(", ")}]`;
  if (v instanceof PyTuple) return v.items.length === 1 ? `(${pyRepr(v.items[0]!)},)` : `(${v.items.map(pyRepr).join(", ")})`;
  return `{${[...v].map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`).join(", ")}}`;
}
