// Finding the Python that runs mixtune's PyTorch engine (python/mixtune_torch): --python, else
// $MIXTUNE_PYTHON, else the first of python3 on PATH and /usr/bin/python3 (Debian's, where
// apt's python3-torch lives) that imports torch >= 1.13.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../util/paths.js';
import { MixtuneError } from '../util/errors.js';

export interface TorchPython {
  python: string;
  torchVersion: string;
  cuda: boolean;
}

const INSTALL = 'install PyTorch >= 1.13 (Debian/Ubuntu: apt-get install -y python3-torch; elsewhere: pip install torch) or name a Python that has it with --python';

/** The folder to put on PYTHONPATH so `python -m mixtune_torch...` finds the engine. */
export function torchEnginePath(): string {
  return join(packageRoot(), 'python');
}

export function findTorchPython(explicit?: string): TorchPython {
  const candidates = explicit ? [explicit] : process.env.MIXTUNE_PYTHON ? [process.env.MIXTUNE_PYTHON] : ['python3', '/usr/bin/python3'];
  const problems: string[] = [];
  for (const python of candidates) {
    const r = spawnSync(python, ['-c', 'import sys, torch; print(sys.version_info[0], sys.version_info[1], torch.__version__, int(torch.cuda.is_available()))'], { encoding: 'utf8', timeout: 60_000 });
    if (r.error) {
      problems.push(`${python}: not found`);
      continue;
    }
    if (r.status !== 0) {
      problems.push(`${python}: cannot import torch`);
      continue;
    }
    const [maj, min, ver, cuda] = r.stdout.trim().split(/\s+/);
    if (Number(maj) < 3 || (Number(maj) === 3 && Number(min) < 9)) {
      problems.push(`${python}: Python ${maj}.${min} is older than 3.9`);
      continue;
    }
    const [tmaj, tmin] = (ver ?? '0.0').split('.').map((x) => parseInt(x, 10));
    if (tmaj! < 1 || (tmaj === 1 && tmin! < 13)) {
      problems.push(`${python}: torch ${ver} is older than 1.13`);
      continue;
    }
    return { python, torchVersion: ver!, cuda: cuda === '1' };
  }
  throw new MixtuneError(`the torch engine needs Python >= 3.9 with PyTorch >= 1.13 (${problems.join('; ')}); ${INSTALL}`);
}
