/**
 * FlatBuffers peer of bench/views.ts, written by hand the way `flatc --ts`
 * would generate it for this schema (no flatc needed):
 *
 * ```
 * struct Trade { id: uint; side: ubyte; qty: int; price: double; ts: double; }
 * table Trades { rows: [Trade]; }
 * root_type Trades;
 * ```
 *
 * A FlatBuffers struct has C layout, so a Trade is 32 bytes: id @0, side @4,
 * qty @8, price @16, ts @24, exactly like the memmap layout.
 */
import * as flatbuffers from "flatbuffers";

export const TRADE_SIZE = 32;

/** The accessor flatc generates for a struct. */
export class Trade {
  bb: flatbuffers.ByteBuffer | null = null;
  bb_pos = 0;

  __init(i: number, bb: flatbuffers.ByteBuffer): Trade {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }

  id(): number {
    return this.bb!.readUint32(this.bb_pos);
  }

  side(): number {
    return this.bb!.readUint8(this.bb_pos + 4);
  }

  qty(): number {
    return this.bb!.readInt32(this.bb_pos + 8);
  }

  price(): number {
    return this.bb!.readFloat64(this.bb_pos + 16);
  }

  ts(): number {
    return this.bb!.readFloat64(this.bb_pos + 24);
  }

  static createTrade(builder: flatbuffers.Builder, id: number, side: number, qty: number, price: number, ts: number): flatbuffers.Offset {
    builder.prep(8, 32);
    builder.writeFloat64(ts);
    builder.writeFloat64(price);
    builder.pad(4);
    builder.writeInt32(qty);
    builder.pad(3);
    builder.writeInt8(side);
    builder.writeInt32(id);
    return builder.offset();
  }
}

/** The accessor flatc generates for the root table. */
export class Trades {
  bb: flatbuffers.ByteBuffer | null = null;
  bb_pos = 0;

  __init(i: number, bb: flatbuffers.ByteBuffer): Trades {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }

  static getRootAsTrades(bb: flatbuffers.ByteBuffer, obj?: Trades): Trades {
    return (obj ?? new Trades()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }

  rows(index: number, obj?: Trade): Trade | null {
    const offset = this.bb!.__offset(this.bb_pos, 4);
    return offset ? (obj ?? new Trade()).__init(this.bb!.__vector(this.bb_pos + offset) + index * TRADE_SIZE, this.bb!) : null;
  }

  rowsLength(): number {
    const offset = this.bb!.__offset(this.bb_pos, 4);
    return offset ? this.bb!.__vector_len(this.bb_pos + offset) : 0;
  }

  static startRowsVector(builder: flatbuffers.Builder, numElems: number): void {
    builder.startVector(TRADE_SIZE, numElems, 8);
  }
}

/** Builds a Trades buffer of `n` rows; `row(i, out)` fills the fields of row i. */
export function buildTrades(n: number, row: (i: number, out: TradeFields) => void): Uint8Array {
  const builder = new flatbuffers.Builder(n * TRADE_SIZE + 1024);
  const t: TradeFields = { id: 0, side: 0, qty: 0, price: 0, ts: 0 };
  Trades.startRowsVector(builder, n);
  for (let i = n - 1; i >= 0; i--) {
    // vectors are built back to front
    row(i, t);
    Trade.createTrade(builder, t.id, t.side, t.qty, t.price, t.ts);
  }
  const rows = builder.endVector();
  builder.startObject(1);
  builder.addFieldOffset(0, rows, 0);
  const root = builder.endObject();
  builder.finish(root);
  return builder.asUint8Array();
}

export interface TradeFields {
  id: number;
  side: number;
  qty: number;
  price: number;
  ts: number;
}
