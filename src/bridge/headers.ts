/**
 * The headers of one record the push bridge publishes:
 *
 * ```
 * NATS/1.0\r\n
 * Memmap-Log: <log id>\r\n
 * Nats-Msg-Id: <log id>:<seq>\r\n
 * Memmap-Seq: <seq>\r\n
 * \r\n
 * ```
 *
 * The client's own header object (`headers()` + `set()` + its encoding)
 * costs several microseconds a record, a large part of the bridge's time:
 * here the constant parts are encoded once per bridge and a record only
 * adds its seq's digits. The client sends whatever `encode()` returns; the
 * bridge checks at start that the client's header objects have that method
 * and otherwise falls back to them (./push.ts).
 */
import type { Match, MsgHdrs } from "@nats-io/transport-node";

const te = new TextEncoder();
const END = te.encode("\r\n\r\n");

/** Header names compared as the client would: exactly ("exact", the default), or ignoring case (the names here are canonical already). */
function sameName(a: string, b: string, match: Match | undefined): boolean {
  return match === undefined || match === "exact" ? a === b : a.toLowerCase() === b.toLowerCase();
}

/** Makes the header objects of one log's records. */
export class HeaderMaker {
  readonly logId: string;
  readonly #head: Uint8Array;
  readonly #mid: Uint8Array;

  constructor(logId: string) {
    this.logId = logId;
    this.#head = te.encode(`NATS/1.0\r\nMemmap-Log: ${logId}\r\nNats-Msg-Id: ${logId}:`);
    this.#mid = te.encode("\r\nMemmap-Seq: ");
  }

  /** The encoded headers of record `seq` (ASCII digits written straight into the bytes). */
  encode(seq: number): Uint8Array {
    const digits = String(seq);
    const n = digits.length;
    // From Node's shared pool: no ArrayBuffer of its own per record (the client only reads these bytes).
    const out = Buffer.allocUnsafe(this.#head.length + n + this.#mid.length + n + END.length);
    out.set(this.#head, 0);
    let o = this.#head.length;
    for (let i = 0; i < n; i++) out[o + i] = digits.charCodeAt(i);
    o += n;
    out.set(this.#mid, o);
    o += this.#mid.length;
    for (let i = 0; i < n; i++) out[o + i] = digits.charCodeAt(i);
    out.set(END, o + n);
    return out;
  }

  make(seq: number): RecordHeaders {
    return new RecordHeaders(this, seq);
  }
}

/** The read-only headers of one record, as the client's MsgHdrs interface; `encode()` is what the client sends. */
export class RecordHeaders implements MsgHdrs {
  readonly hasError = false;
  readonly status = "";
  readonly code = 0;
  readonly description = "";
  readonly #maker: HeaderMaker;
  readonly #seq: number;

  constructor(maker: HeaderMaker, seq: number) {
    this.#maker = maker;
    this.#seq = seq;
  }

  encode(): Uint8Array {
    return this.#maker.encode(this.#seq);
  }

  #entries(): [string, string[]][] {
    const id = this.#maker.logId;
    return [["Memmap-Log", [id]], ["Nats-Msg-Id", [`${id}:${this.#seq}`]], ["Memmap-Seq", [String(this.#seq)]]];
  }

  values(k: string, match?: Match): string[] {
    return this.#entries().find(([name]) => sameName(name, k, match))?.[1] ?? [];
  }

  get(k: string, match?: Match): string {
    return this.values(k, match)[0] ?? "";
  }

  last(k: string, match?: Match): string {
    return this.get(k, match);
  }

  has(k: string, match?: Match): boolean {
    return this.values(k, match).length > 0;
  }

  keys(): string[] {
    return this.#entries().map(([name]) => name);
  }

  [Symbol.iterator](): Iterator<[string, string[]]> {
    return this.#entries()[Symbol.iterator]();
  }

  set(): void {
    throw new TypeError("a bridged record's headers are read-only");
  }

  append(): void {
    this.set();
  }

  delete(): void {
    this.set();
  }
}
