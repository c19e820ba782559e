/**
 * How much of a file is in the page cache, measured through a read-only
 * mapping (mincore), in slices so a huge file needs only a small vector.
 */
import { mapFile, type MappedFile } from "../index.ts";

/** Bytes of file measured per mincore call: 1 GiB = a 256 KiB vector with 4 KiB pages. */
const SLICE_BYTES = 1 << 30;

/** Default width of a residency map, in characters. */
export const MAP_WIDTH = 64;

export interface FileResidency {
  path: string;
  /** Bytes in the file. */
  size: number;
  /** Pages the file spans. */
  pages: number;
  /** Of those, pages in the page cache. */
  resident: number;
  /**
   * With a map width: one character per group of pages, `O` all resident,
   * `o` some, a space none (vmtouch's notation).
   */
  map?: string;
}

/** Maps a file (a path, or an open descriptor shown as `shown`) read-only and counts its resident pages. */
export function measureResidency(target: string | number, mapWidth = 0, shown = String(target)): FileResidency {
  const m = mapFile(target);
  try {
    return residencyOf(m, shown, mapWidth);
  } finally {
    m.close();
  }
}

/** Resident pages of an open mapping (the whole of it). */
export function residencyOf(m: MappedFile, path: string, mapWidth = 0): FileResidency {
  const size = m.byteLength;
  let pages = 0;
  let resident = 0;
  // Map buckets, filled in as slices arrive so the page vector is never whole:
  // bucket b covers pages [floor(b * n / w), floor((b + 1) * n / w)).
  let buckets: { total: number; resident: number }[] = [];
  let bucketOf = (_page: number): number => 0;
  for (let offset = 0; offset < size; offset += SLICE_BYTES) {
    const r = m.residency(offset, Math.min(SLICE_BYTES, size - offset));
    if (offset === 0 && mapWidth > 0) {
      const allPages = Math.ceil(size / r.pageSize);
      const width = Math.min(mapWidth, allPages);
      buckets = Array.from({ length: width }, () => ({ total: 0, resident: 0 }));
      bucketOf = (page) => Math.floor(((page + 0.5) * width) / allPages);
    }
    if (mapWidth > 0) {
      for (let i = 0; i < r.pages.length; i++) {
        const b = buckets[bucketOf(pages + i)];
        if (b === undefined) continue;
        b.total++;
        b.resident += r.pages[i]!;
      }
    }
    pages += r.totalPages;
    resident += r.residentPages;
  }
  const result: FileResidency = { path, size, pages, resident };
  if (mapWidth > 0) {
    result.map = buckets.map((b) => (b.resident === 0 ? " " : b.resident === b.total ? "O" : "o")).join("");
  }
  return result;
}
