/**
 * stress:log — the crash test at scale: 5,000 SIGKILLs of a writer process
 * at random moments (while it opens and repairs the log, mid-append, between
 * a claim and its commit, mid-roll-over), each followed by a reopen and a
 * full check of the log (test/fixtures/log-crash-loop.ts). Not part of
 * `npm test`: it takes a while (about 0.1–0.3 s per kill and lane).
 *
 * Run: npm run stress:log [-- --kills N] [-- --lanes N]
 * One lane by default (it cycles durability none, batch, sync); more lanes
 * run at once, each with one durability, and only pay off with idle cores.
 */
import { killLoop, type LaneStats } from "../test/fixtures/log-crash-loop.ts";
import { removeBundles } from "../test/fixtures/log-helpers.ts";
import { saveResults } from "./common.ts";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const kills = arg("kills", 5000);
const lanes = arg("lanes", 1);
const modes = ["none", "batch", "sync"];
const t0 = performance.now();
const progress = new Array<LaneStats | undefined>(lanes);
let lastPrint = 0;
const print = (force = false): void => {
  const now = performance.now();
  if (!force && now - lastPrint < 5000) return;
  lastPrint = now;
  const done = progress.reduce((a, s) => a + (s?.kills ?? 0), 0);
  const rewound = progress.reduce((a, s) => a + (s?.rewound ?? 0), 0);
  console.log(`${done}/${kills} kills, ${rewound} mid-append, ${((now - t0) / 1000).toFixed(0)} s`);
};

try {
  const per = Math.ceil(kills / lanes);
  const results = await Promise.all(
    Array.from({ length: lanes }, (_, lane) =>
      killLoop(per, lanes === 1 ? modes : [modes[lane % modes.length]!], (s) => {
        progress[lane] = s;
        print();
      }),
    ),
  );
  print(true);
  const total = results.reduce((a, r) => a + r.kills, 0);
  const summary = {
    kills: total,
    lanes: results.map((r, i) => ({ durability: lanes === 1 ? modes.join(", ") : modes[i % modes.length], ...r })),
    seconds: (performance.now() - t0) / 1000,
    result: "every check passed",
  };
  console.log(`\n${total} kills, every reopen held exactly the committed prefix with every reported record.`);
  console.log(`kills while opening/repairing: ${results.reduce((a, r) => a + r.early, 0)}; between claim and commit: ${results.reduce((a, r) => a + r.rewound, 0)}`);
  console.log(`raw numbers: ${saveResults("log-stress", summary)}`);
} finally {
  removeBundles();
}
