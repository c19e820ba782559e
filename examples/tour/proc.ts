/**
 * Memory figures of a process from /proc, for the tour: how much of a mapped
 * file a process has in RAM (Rss), its fair share of pages it shares with
 * others (Pss: each page divided by the number of processes mapping it), and
 * how much of it is shared.
 */
import * as fs from "node:fs";

export interface MemoryFigures {
  /** Resident: pages of the region in RAM and mapped by this process. */
  rss: number;
  /** Proportional: each resident page divided by how many processes map it. */
  pss: number;
  /** Resident pages that other processes map too. */
  shared: number;
  /** Resident pages only this process maps. */
  private: number;
}

function field(block: string, name: string): number {
  const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(block);
  return match ? Number(match[1]) * 1024 : 0;
}

function figures(block: string): MemoryFigures {
  return {
    rss: field(block, "Rss"),
    pss: field(block, "Pss"),
    shared: field(block, "Shared_Clean") + field(block, "Shared_Dirty"),
    private: field(block, "Private_Clean") + field(block, "Private_Dirty"),
  };
}

/** The whole process (/proc/<pid>/smaps_rollup). */
export function processMemory(pid: number): MemoryFigures {
  return figures(fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
}

/** The sum over the process's mappings of `file` (/proc/<pid>/smaps). */
export function mappingMemory(pid: number, file: string): MemoryFigures {
  const smaps = fs.readFileSync(`/proc/${pid}/smaps`, "utf8");
  const total: MemoryFigures = { rss: 0, pss: 0, shared: 0, private: 0 };
  // Each mapping is a header line "start-end perms offset dev inode   path" followed by "Key: value" lines.
  const blocks = smaps.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
  for (const block of blocks) {
    const header = block.slice(0, block.indexOf("\n"));
    if (!header.endsWith(` ${file}`)) continue;
    const f = figures(block);
    total.rss += f.rss;
    total.pss += f.pss;
    total.shared += f.shared;
    total.private += f.private;
  }
  return total;
}
