
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'gym' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'gym'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'gym' {
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('keygen', 'keygen', [CompletionResultType]::ParameterValue, 'Create a worker key (Ed25519, optionally with ML-DSA-87)')
            [CompletionResult]::new('key', 'key', [CompletionResultType]::ParameterValue, 'Work with key files')
            [CompletionResult]::new('delta', 'delta', [CompletionResultType]::ParameterValue, 'Pack, unpack, inspect, verify and compare DELTA files')
            [CompletionResult]::new('reward', 'reward', [CompletionResultType]::ParameterValue, 'Estimate epoch rewards; sign and verify reward claims')
            [CompletionResult]::new('ring', 'ring', [CompletionResultType]::ParameterValue, 'Average deltas with other workers: authenticated, encrypted, verifiable ring all-reduce')
            [CompletionResult]::new('cid', 'cid', [CompletionResultType]::ParameterValue, 'Print the CIDs `ipfs add` would give files or directories, computed offline')
            [CompletionResult]::new('publish', 'publish', [CompletionResultType]::ParameterValue, 'Publish a file or folder: to a local CID-named folder, an IPFS node, the Hugging Face Hub')
            [CompletionResult]::new('model', 'model', [CompletionResultType]::ParameterValue, 'Inspect model folders (architecture, parameters, memory, LoRA size)')
            [CompletionResult]::new('train', 'train', [CompletionResultType]::ParameterValue, 'Fine-tune with GSPO (LoRA over an NF4 base); write metrics, checkpoints, signed deltas')
            [CompletionResult]::new('eval', 'eval', [CompletionResultType]::ParameterValue, 'Evaluate a model or adapter: mean reward, accuracy, NLL of reference answers')
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Complete prompts with a model (default: the bundled tiny Qwen3)')
            [CompletionResult]::new('plot', 'plot', [CompletionResultType]::ParameterValue, 'Draw training curves (metrics JSON Lines) into an SVG, one panel per metric')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('download', 'download', [CompletionResultType]::ParameterValue, 'Download a model or dataset by hub id into the Hugging Face cache; print its folder')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check a round''s deltas (signature, sequence, base, norm, held-out loss); signed verdicts')
            [CompletionResult]::new('orchestrate', 'orchestrate', [CompletionResultType]::ParameterValue, 'Run a job''s orchestrator: rounds, rings, signed decision log, checkpoint publishing')
            [CompletionResult]::new('work', 'work', [CompletionResultType]::ParameterValue, 'Train for an orchestrator''s job: register, train, report, join each round''s ring')
            [CompletionResult]::new('job', 'job', [CompletionResultType]::ParameterValue, 'Inspect or stop a running job')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'The whole protocol on one machine: an orchestrator and 3 workers, 2 epochs, on loopback')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gym;keygen' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Where to write the private key (PKCS#8 PEM, mode 0600)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Where to write the private key (PKCS#8 PEM, mode 0600)')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--pq', '--pq', [CompletionResultType]::ParameterName, 'Also create an ML-DSA-87 key pair for hybrid (post-quantum) signatures')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Replace an existing key file')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the public identity as JSON')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;key' {
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show the public identity of a key file: worker id and public keys')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gym;key;show' {
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON (format `gym-key/1`): worker_id, ed25519, ed25519_pem, ml_dsa_87')
            [CompletionResult]::new('--pem', '--pem', [CompletionResultType]::ParameterName, 'Print only the Ed25519 public key as SPKI PEM (as `openssl pkey -pubout` does)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;key;help' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show the public identity of a key file: worker id and public keys')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gym;key;help;show' {
            break
        }
        'gym;key;help;help' {
            break
        }
        'gym;delta' {
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('pack', 'pack', [CompletionResultType]::ParameterValue, 'Pack a .safetensors file or a PEFT adapter folder into a DELTA file')
            [CompletionResult]::new('unpack', 'unpack', [CompletionResultType]::ParameterValue, 'Unpack a DELTA file to .safetensors (or a PEFT adapter folder), checking it fully')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show a DELTA file''s header, metadata, tensors and signer (reads headers only)')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Verify DELTA files: structure, checksum, signatures, trust and policy')
            [CompletionResult]::new('diff', 'diff', [CompletionResultType]::ParameterValue, 'Compare two DELTA files tensor by tensor (L2 distance, max abs difference, cosine)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gym;delta;pack' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'The DELTA file to write')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'The DELTA file to write')
            [CompletionResult]::new('--sign', '--sign', [CompletionResultType]::ParameterName, 'Sign with this key file (hybrid Ed25519 + ML-DSA-87 when the key has both)')
            [CompletionResult]::new('--compression', '--compression', [CompletionResultType]::ParameterName, 'compression')
            [CompletionResult]::new('--chunk-size', '--chunk-size', [CompletionResultType]::ParameterName, 'Raw bytes per chunk: a power of two from 256 bytes to 64MiB')
            [CompletionResult]::new('--epoch', '--epoch', [CompletionResultType]::ParameterName, 'epoch')
            [CompletionResult]::new('--step', '--step', [CompletionResultType]::ParameterName, 'step')
            [CompletionResult]::new('--seq', '--seq', [CompletionResultType]::ParameterName, 'Sequence number; must increase with every delta a worker publishes')
            [CompletionResult]::new('--loss', '--loss', [CompletionResultType]::ParameterName, 'loss')
            [CompletionResult]::new('--worker-id', '--worker-id', [CompletionResultType]::ParameterName, 'Worker label (default: the signer''s worker id, or "anonymous" when unsigned)')
            [CompletionResult]::new('--base-hash', '--base-hash', [CompletionResultType]::ParameterName, 'SHA3-256 of the base model state the delta was trained against')
            [CompletionResult]::new('--parent-hash', '--parent-hash', [CompletionResultType]::ParameterName, 'Body digest of the delta this one applies on top of')
            [CompletionResult]::new('--timestamp', '--timestamp', [CompletionResultType]::ParameterName, 'RFC 3339 UTC time (default: now, or SOURCE_DATE_EPOCH)')
            [CompletionResult]::new('--tokens', '--tokens', [CompletionResultType]::ParameterName, 'Compute record: tokens processed')
            [CompletionResult]::new('--flops', '--flops', [CompletionResultType]::ParameterName, 'Compute record: floating-point operations')
            [CompletionResult]::new('--device', '--device', [CompletionResultType]::ParameterName, 'Compute record: device description')
            [CompletionResult]::new('--wall-seconds', '--wall-seconds', [CompletionResultType]::ParameterName, 'Compute record: wall-clock seconds')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'A JSON object summarising the training configuration, stored as `config`')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Replace OUT if it exists')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON summary (format `gym-delta-pack/1`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;delta;unpack' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output .safetensors file, or folder for a PEFT adapter')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output .safetensors file, or folder for a PEFT adapter')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'format')
            [CompletionResult]::new('--trusted-keys', '--trusted-keys', [CompletionResultType]::ParameterName, 'Require a signer from this file (see `gym delta verify --help`)')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Replace OUT if it exists')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;delta;inspect' {
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON (format `gym-delta-inspect/1`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;delta;verify' {
            [CompletionResult]::new('--trusted-keys', '--trusted-keys', [CompletionResultType]::ParameterName, 'Require every delta to be signed by a key in this file')
            [CompletionResult]::new('--min-seq', '--min-seq', [CompletionResultType]::ParameterName, 'Reject deltas whose sequence number is below N')
            [CompletionResult]::new('--base-hash', '--base-hash', [CompletionResultType]::ParameterName, 'Reject deltas whose base model hash differs')
            [CompletionResult]::new('--vectors', '--vectors', [CompletionResultType]::ParameterName, 'Check every test vector of a manifest against its expected verdict')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--require-signature', '--require-signature', [CompletionResultType]::ParameterName, 'Require a signature (from anyone) even without --trusted-keys')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON (format `gym-delta-verify/1`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;delta;diff' {
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON (format `gym-delta-diff/1`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;delta;help' {
            [CompletionResult]::new('pack', 'pack', [CompletionResultType]::ParameterValue, 'Pack a .safetensors file or a PEFT adapter folder into a DELTA file')
            [CompletionResult]::new('unpack', 'unpack', [CompletionResultType]::ParameterValue, 'Unpack a DELTA file to .safetensors (or a PEFT adapter folder), checking it fully')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show a DELTA file''s header, metadata, tensors and signer (reads headers only)')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Verify DELTA files: structure, checksum, signatures, trust and policy')
            [CompletionResult]::new('diff', 'diff', [CompletionResultType]::ParameterValue, 'Compare two DELTA files tensor by tensor (L2 distance, max abs difference, cosine)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gym;delta;help;pack' {
            break
        }
        'gym;delta;help;unpack' {
            break
        }
        'gym;delta;help;inspect' {
            break
        }
        'gym;delta;help;verify' {
            break
        }
        'gym;delta;help;diff' {
            break
        }
        'gym;delta;help;help' {
            break
        }
        'gym;reward' {
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('estimate', 'estimate', [CompletionResultType]::ParameterValue, 'Estimate an epoch''s rewards from an epoch folder or a contributions file')
            [CompletionResult]::new('claim', 'claim', [CompletionResultType]::ParameterValue, 'Sign a reward claim binding your signed delta (digest, CID) to its compute record')
            [CompletionResult]::new('verify-claim', 'verify-claim', [CompletionResultType]::ParameterValue, 'Verify a reward claim''s signature, and optionally that it matches a delta')
            [CompletionResult]::new('economics', 'economics', [CompletionResultType]::ParameterValue, 'Print the economics in effect as TOML (the defaults, or FILE with defaults filled in)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gym;reward;estimate' {
            [CompletionResult]::new('--economics', '--economics', [CompletionResultType]::ParameterName, 'Economics file (TOML). Missing fields take the defaults shown by `gym reward economics`')
            [CompletionResult]::new('--epoch', '--epoch', [CompletionResultType]::ParameterName, 'Epoch to estimate (0-based; default: the input''s "epoch" field, else 0 for a contributions file)')
            [CompletionResult]::new('--model-params', '--model-params', [CompletionResultType]::ParameterName, 'Model size in parameters. Claimed FLOPs are capped at 6 x params x tokens. Required for an epoch folder; applies to contributions records that give "tokens"')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON (format `gym-reward-estimate/1`)')
            [CompletionResult]::new('--csv', '--csv', [CompletionResultType]::ParameterName, 'Print CSV, one line per node')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;reward;claim' {
            [CompletionResult]::new('--delta', '--delta', [CompletionResultType]::ParameterName, 'Your signed delta')
            [CompletionResult]::new('--cid', '--cid', [CompletionResultType]::ParameterName, 'The IPFS CID the delta was published under (checked for syntax, not recomputed)')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'The key that signed the delta')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Where to write the claim (JSON, format `gym-reward-claim/1`)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Where to write the claim (JSON, format `gym-reward-claim/1`)')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Replace the output if it exists')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;reward;verify-claim' {
            [CompletionResult]::new('--delta', '--delta', [CompletionResultType]::ParameterName, 'Also check that this delta is the one claimed: digest, file hash, signer, compute record')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON (format `gym-reward-claim-verify/1`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;reward;economics' {
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;reward;help' {
            [CompletionResult]::new('estimate', 'estimate', [CompletionResultType]::ParameterValue, 'Estimate an epoch''s rewards from an epoch folder or a contributions file')
            [CompletionResult]::new('claim', 'claim', [CompletionResultType]::ParameterValue, 'Sign a reward claim binding your signed delta (digest, CID) to its compute record')
            [CompletionResult]::new('verify-claim', 'verify-claim', [CompletionResultType]::ParameterValue, 'Verify a reward claim''s signature, and optionally that it matches a delta')
            [CompletionResult]::new('economics', 'economics', [CompletionResultType]::ParameterValue, 'Print the economics in effect as TOML (the defaults, or FILE with defaults filled in)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gym;reward;help;estimate' {
            break
        }
        'gym;reward;help;claim' {
            break
        }
        'gym;reward;help;verify-claim' {
            break
        }
        'gym;reward;help;economics' {
            break
        }
        'gym;reward;help;help' {
            break
        }
        'gym;ring' {
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('plan', 'plan', [CompletionResultType]::ParameterValue, 'Write a ring file from lines of `ADDRESS PUBLIC-KEY` (or `ADDRESS {gym key show --json}`)')
            [CompletionResult]::new('join', 'join', [CompletionResultType]::ParameterValue, 'Join a ring, run one all-reduce (weighted mean of the members'' deltas), write the result')
            [CompletionResult]::new('audit', 'audit', [CompletionResultType]::ParameterValue, 'Audit a result of `gym ring join` offline: receipts, transcript, members'' inputs, mean')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gym;ring;plan' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Where to write the ring file (default: standard output)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Where to write the ring file (default: standard output)')
            [CompletionResult]::new('--round', '--round', [CompletionResultType]::ParameterName, 'Round number: increase it for every all-reduce, so messages of one cannot be replayed into another')
            [CompletionResult]::new('--chunk-elements', '--chunk-elements', [CompletionResultType]::ParameterName, 'Elements per data message (pipelining granularity). Default: 65536, or 262144 in a hybrid ring (every member with an ML-DSA-87 key), whose signatures cost ~20× more')
            [CompletionResult]::new('--max-weight', '--max-weight', [CompletionResultType]::ParameterName, 'Largest weight a member may commit (1 to 2^32, default 2^32). A member committing more is excluded by the others. Together with --max-exponent it fixes the precision every honest member is guaranteed (printed)')
            [CompletionResult]::new('--max-exponent', '--max-exponent', [CompletionResultType]::ParameterName, 'Largest input exponent a member may commit: every element of its delta must be below 2^E in magnitude (default 8). A member committing more is excluded by the others')
            [CompletionResult]::new('--scale-bits', '--scale-bits', [CompletionResultType]::ParameterName, 'Fix the fixed-point scale at 2^F instead of the one the members'' commits give: every ring of a hierarchical round uses the round''s F, 58 − max_exponent − bitlen(N · max_weight) over its N members (docs/ring-protocol.md "Hierarchical rounds")')
            [CompletionResult]::new('--quantize', '--quantize', [CompletionResultType]::ParameterName, 'Quantized averaging: every member rounds its delta, per block of 64 values, to BITS-bit signed multiples of a power of two (2 to 16 bits) before the exact sum. Smaller data messages; each element''s error is at most half a step, 2^(e−BITS) for a block whose values are below 2^e (docs/ring-protocol.md, "Quantized averaging"). Default: lossless')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--sum-output', '--sum-output', [CompletionResultType]::ParameterName, 'Make every member write the group''s exact integer sum and weight total (a sum file, the input of a leader ring) instead of the mean. Needs --scale-bits')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Replace an existing output')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;ring;join' {
            [CompletionResult]::new('--ring', '--ring', [CompletionResultType]::ParameterName, 'The ring file (`gym ring plan`)')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'This member''s key (`gym keygen`); its public key must be in the ring file. In a hybrid ring (every member with an ML-DSA-87 key) it needs its listed ML-DSA-87 half too')
            [CompletionResult]::new('--input', '--input', [CompletionResultType]::ParameterName, 'This member''s delta. All members'' deltas must have the same tensors. In a leader ring of a hierarchical round: a group''s sum file (written by a ring with --sum-output), whose integers enter the exact sum as they are, with its weight total')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Where to write the averaged delta (identical on every member); a sum file when the ring file says `output = "sum"`')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Where to write the averaged delta (identical on every member); a sum file when the ring file says `output = "sum"`')
            [CompletionResult]::new('--weight', '--weight', [CompletionResultType]::ParameterName, 'This member''s weight in the mean (e.g. tokens or samples), 1 to 2^32. A sum file input brings its own weight total')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Seconds without progress before the member starts a view change')
            [CompletionResult]::new('--quantize', '--quantize', [CompletionResultType]::ParameterName, 'Expect a quantized ring of BITS bits per element: refused unless the ring file says `quantize = BITS` (the ring file decides; `gym ring plan --quantize`)')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for all members to connect at the start')
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Listen on this address instead of this member''s address in the ring file (the others still dial the ring file''s address: for a port forward, a NAT or a proxy in front)')
            [CompletionResult]::new('--receipts', '--receipts', [CompletionResultType]::ParameterName, 'Write the signed `forward` receipt (gym-ring-receipt/1, docs/rewards.md §7) this member issues to its predecessor in the final view, for `gym reward estimate`''s ring/ folder')
            [CompletionResult]::new('--epoch', '--epoch', [CompletionResultType]::ParameterName, 'The reward epoch the receipt is for')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Replace an existing output')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON report (format `gym-ring-join/1`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;ring;audit' {
            [CompletionResult]::new('--input', '--input', [CompletionResultType]::ParameterName, 'A member''s input delta (repeatable): matched to the member that committed to its body digest')
            [CompletionResult]::new('--ring', '--ring', [CompletionResultType]::ParameterName, 'The ring file: take the members'' keys from it instead of from the result''s record')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON report (format `gym-ring-audit/1`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;ring;help' {
            [CompletionResult]::new('plan', 'plan', [CompletionResultType]::ParameterValue, 'Write a ring file from lines of `ADDRESS PUBLIC-KEY` (or `ADDRESS {gym key show --json}`)')
            [CompletionResult]::new('join', 'join', [CompletionResultType]::ParameterValue, 'Join a ring, run one all-reduce (weighted mean of the members'' deltas), write the result')
            [CompletionResult]::new('audit', 'audit', [CompletionResultType]::ParameterValue, 'Audit a result of `gym ring join` offline: receipts, transcript, members'' inputs, mean')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gym;ring;help;plan' {
            break
        }
        'gym;ring;help;join' {
            break
        }
        'gym;ring;help;audit' {
            break
        }
        'gym;ring;help;help' {
            break
        }
        'gym;cid' {
            [CompletionResult]::new('--cid-version', '--cid-version', [CompletionResultType]::ParameterName, '0: `Qm…` (kubo''s default); 1: raw leaves, base32 (`bafk…` one chunk, `bafy…` a tree)')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Also list every file and directory inside directories, as `ipfs add -r` does')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON (format `gym-cid/1`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;publish' {
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'Publish into this local folder, files named by CID')
            [CompletionResult]::new('--ipfs', '--ipfs', [CompletionResultType]::ParameterName, 'Publish to an IPFS node''s RPC API')
            [CompletionResult]::new('--hf', '--hf', [CompletionResultType]::ParameterName, 'Publish to a Hugging Face Hub model repository')
            [CompletionResult]::new('--revision', '--revision', [CompletionResultType]::ParameterName, 'Hub branch to commit to')
            [CompletionResult]::new('-m', '-m', [CompletionResultType]::ParameterName, 'Hub commit message (default: "Upload <name> with gym")')
            [CompletionResult]::new('--message', '--message', [CompletionResultType]::ParameterName, 'Hub commit message (default: "Upload <name> with gym")')
            [CompletionResult]::new('--cid-version', '--cid-version', [CompletionResultType]::ParameterName, 'CID version for --to and --ipfs (0: `Qm…`, 1: raw leaves, base32)')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--private', '--private', [CompletionResultType]::ParameterName, 'Create the Hub repository private when it does not exist')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'With --to: write again even when an entry of that CID exists')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON (format `gym-publish/1`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;model' {
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show a model folder''s architecture, parameters, memory and LoRA size')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gym;model;inspect' {
            [CompletionResult]::new('--rank', '--rank', [CompletionResultType]::ParameterName, 'LoRA rank for the adapter size')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON (format `gym-model/1`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;model;help' {
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show a model folder''s architecture, parameters, memory and LoRA size')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gym;model;help;inspect' {
            break
        }
        'gym;model;help;help' {
            break
        }
        'gym;train' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Settings file (TOML, TRL/seed key names); flags override it')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Hugging Face model folder, or a hub id ORG/NAME[@REVISION] resolved through the Hugging Face cache (HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE; downloads from HF_ENDPOINT with HF_TOKEN) (default: the bundled tiny Qwen3). Env: MODEL_NAME')
            [CompletionResult]::new('--data', '--data', [CompletionResultType]::ParameterName, 'Prompts: a JSONL, JSON or Parquet file with `prompt` or `messages`, optional `answer`, or a hub dataset id ORG/NAME[@REVISION] (its --split''s Parquet or JSON files) (default: the bundled toy task, answering in digits)')
            [CompletionResult]::new('--split', '--split', [CompletionResultType]::ParameterName, 'Hub datasets: the split to train on [default: train]')
            [CompletionResult]::new('--data-config', '--data-config', [CompletionResultType]::ParameterName, 'Hub datasets: the configuration (first folder, e.g. `main`) when the split exists in several')
            [CompletionResult]::new('--prompt-column', '--prompt-column', [CompletionResultType]::ParameterName, 'The data column holding the prompt (a string, or a list of messages) [default: prompt or messages]')
            [CompletionResult]::new('--answer-column', '--answer-column', [CompletionResultType]::ParameterName, 'The data column holding the reference answer [default: answer]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output folder (metrics, checkpoints, deltas). Default: runs/train-<UTC time>')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output folder (metrics, checkpoints, deltas). Default: runs/train-<UTC time>')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Worker key that signs the deltas (default: OUTPUT/worker.key, created if missing)')
            [CompletionResult]::new('--ring', '--ring', [CompletionResultType]::ParameterName, 'Average with other workers: every aggregate_interval steps, join this ring (TOML, as `gym ring plan` writes; needs --key, a member''s key) with the update since the last agreed mean (deltas/update-<seq>.delta; the mean update is deltas/ring-<seq>.delta) and continue from the new mean (deltas/avg-<seq>.delta)')
            [CompletionResult]::new('--ring-timeout', '--ring-timeout', [CompletionResultType]::ParameterName, 'With --ring: seconds without progress before a member is dropped from a round')
            [CompletionResult]::new('--ring-connect-timeout', '--ring-connect-timeout', [CompletionResultType]::ParameterName, 'With --ring: seconds to wait for every member to connect at each round')
            [CompletionResult]::new('--ring-quantize', '--ring-quantize', [CompletionResultType]::ParameterName, 'With --ring: expect quantized averaging at BITS bits per element (2 to 16); refused unless the ring file says `quantize = BITS` (`gym ring plan --quantize`)')
            [CompletionResult]::new('--device', '--device', [CompletionResultType]::ParameterName, 'Where the model runs: cpu, cuda (GPU 0) or cuda:N; a GPU needs a build with the `cuda` feature and an NVIDIA driver (else exit code 22)')
            [CompletionResult]::new('--reward', '--reward', [CompletionResultType]::ParameterName, 'Reward `KIND[:ARG][@WEIGHT]` (repeat to combine): exact, math, math_format, regex:PAT, coverage:PAT, length:N, format, cmd:COMMAND')
            [CompletionResult]::new('--reward-cmd', '--reward-cmd', [CompletionResultType]::ParameterName, 'External scorer: gets JSON lines on stdin, prints one number per line (weight 1)')
            [CompletionResult]::new('--report-to', '--report-to', [CompletionResultType]::ParameterName, 'Also log each step''s metrics here: `tensorboard` writes event files to OUTPUT/runs/ (TRL''s tag names; view with `tensorboard --logdir OUTPUT/runs`)')
            [CompletionResult]::new('--max-steps', '--max-steps', [CompletionResultType]::ParameterName, 'Optimiser steps to run')
            [CompletionResult]::new('--seed', '--seed', [CompletionResultType]::ParameterName, 'Seed of sampling, shuffling and the LoRA initialisation')
            [CompletionResult]::new('--learning-rate', '--learning-rate', [CompletionResultType]::ParameterName, 'Peak learning rate of AdamW')
            [CompletionResult]::new('--lr-scheduler-type', '--lr-scheduler-type', [CompletionResultType]::ParameterName, 'How the learning rate decays after the warm-up')
            [CompletionResult]::new('--warmup-steps', '--warmup-steps', [CompletionResultType]::ParameterName, 'Steps over which the learning rate rises linearly from 0')
            [CompletionResult]::new('--beta', '--beta', [CompletionResultType]::ParameterName, 'KL coefficient. Env: GSPO_BETA')
            [CompletionResult]::new('--num-generations', '--num-generations', [CompletionResultType]::ParameterName, 'Completions per prompt (group size)')
            [CompletionResult]::new('--importance-sampling-level', '--importance-sampling-level', [CompletionResultType]::ParameterName, 'Env: IMPORTANCE_SAMPLING_LEVEL')
            [CompletionResult]::new('--loss-type', '--loss-type', [CompletionResultType]::ParameterName, 'How the per-token losses of a micro-batch are averaged')
            [CompletionResult]::new('--scale-rewards', '--scale-rewards', [CompletionResultType]::ParameterName, 'Which standard deviation divides the group-centred rewards')
            [CompletionResult]::new('--epsilon', '--epsilon', [CompletionResultType]::ParameterName, 'Lower clipping range of the importance ratio (1 - epsilon)')
            [CompletionResult]::new('--epsilon-high', '--epsilon-high', [CompletionResultType]::ParameterName, 'Upper clipping range of the importance ratio (1 + epsilon_high; default: epsilon)')
            [CompletionResult]::new('--per-device-train-batch-size', '--per-device-train-batch-size', [CompletionResultType]::ParameterName, 'Completions per micro-batch')
            [CompletionResult]::new('--steps-per-generation', '--steps-per-generation', [CompletionResultType]::ParameterName, 'Micro-batches per rollout (default: gradient_accumulation_steps)')
            [CompletionResult]::new('--gradient-accumulation-steps', '--gradient-accumulation-steps', [CompletionResultType]::ParameterName, 'Micro-batches whose gradients add up to one optimiser step')
            [CompletionResult]::new('--num-iterations', '--num-iterations', [CompletionResultType]::ParameterName, 'Passes over each rollout (GRPO''s mu)')
            [CompletionResult]::new('--max-completion-length', '--max-completion-length', [CompletionResultType]::ParameterName, 'Longest completion, in tokens')
            [CompletionResult]::new('--min-completion-length', '--min-completion-length', [CompletionResultType]::ParameterName, 'No end-of-sequence token before this many tokens')
            [CompletionResult]::new('--temperature', '--temperature', [CompletionResultType]::ParameterName, 'Sampling temperature of the rollouts')
            [CompletionResult]::new('--top-p', '--top-p', [CompletionResultType]::ParameterName, 'Nucleus sampling: keep the most likely tokens up to this probability mass (1: all)')
            [CompletionResult]::new('--top-k', '--top-k', [CompletionResultType]::ParameterName, 'Sample among the K most likely tokens only (0: all)')
            [CompletionResult]::new('--lora-rank', '--lora-rank', [CompletionResultType]::ParameterName, 'Rank of the LoRA factors')
            [CompletionResult]::new('--lora-alpha', '--lora-alpha', [CompletionResultType]::ParameterName, 'LoRA scaling numerator (the update is scaled by alpha / rank)')
            [CompletionResult]::new('--gradient-checkpointing', '--gradient-checkpointing', [CompletionResultType]::ParameterName, 'Recompute each layer in the backward instead of keeping its activations (less memory, one more forward of the layers per step)')
            [CompletionResult]::new('--use-4bit', '--use-4bit', [CompletionResultType]::ParameterName, 'NF4 base (true) or f32 base (false). Env: USE_4BIT')
            [CompletionResult]::new('--aggregate-interval', '--aggregate-interval', [CompletionResultType]::ParameterName, 'Steps between signed deltas')
            [CompletionResult]::new('--save-steps', '--save-steps', [CompletionResultType]::ParameterName, 'Steps between resumable states and PEFT checkpoints')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--resume', '--resume', [CompletionResultType]::ParameterName, 'Continue the run in --output from its last saved state')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Start afresh in an output folder that holds an earlier run')
            [CompletionResult]::new('--print-config', '--print-config', [CompletionResultType]::ParameterName, 'Print the resolved settings (TOML) and exit')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON summary at the end (format `gym-train/1`)')
            [CompletionResult]::new('--mask-truncated-completions', '--mask-truncated-completions', [CompletionResultType]::ParameterName, 'Zero the loss of completions that hit max_completion_length without ending')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;eval' {
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Hugging Face model folder, or a hub id ORG/NAME[@REVISION] resolved through the Hugging Face cache, as for `gym train` (default: the bundled tiny Qwen3)')
            [CompletionResult]::new('--adapter', '--adapter', [CompletionResultType]::ParameterName, 'PEFT adapter folder to apply')
            [CompletionResult]::new('--delta', '--delta', [CompletionResultType]::ParameterName, 'A signed delta holding a LoRA adapter (as `gym train` writes); verified before use')
            [CompletionResult]::new('--trusted-keys', '--trusted-keys', [CompletionResultType]::ParameterName, 'With --delta: the signer must be listed here')
            [CompletionResult]::new('--data', '--data', [CompletionResultType]::ParameterName, 'Prompts: a JSONL, JSON or Parquet file, or a hub dataset id ORG/NAME[@REVISION] (default: the bundled toy task)')
            [CompletionResult]::new('--split', '--split', [CompletionResultType]::ParameterName, 'Hub datasets: the split to evaluate on')
            [CompletionResult]::new('--data-config', '--data-config', [CompletionResultType]::ParameterName, 'Hub datasets: the configuration (first folder) when the split exists in several')
            [CompletionResult]::new('--prompt-column', '--prompt-column', [CompletionResultType]::ParameterName, 'The data column holding the prompt [default: prompt or messages]')
            [CompletionResult]::new('--answer-column', '--answer-column', [CompletionResultType]::ParameterName, 'The data column holding the reference answer [default: answer]')
            [CompletionResult]::new('--reward', '--reward', [CompletionResultType]::ParameterName, 'Reward `KIND[:ARG][@WEIGHT]` (repeat to combine; default: exact, or the toy task''s)')
            [CompletionResult]::new('--max-completion-length', '--max-completion-length', [CompletionResultType]::ParameterName, 'max-completion-length')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Evaluate only the first N examples')
            [CompletionResult]::new('--device', '--device', [CompletionResultType]::ParameterName, 'Where the model runs: cpu, cuda (GPU 0) or cuda:N; a GPU needs a build with the `cuda` feature and an NVIDIA driver (else exit code 22)')
            [CompletionResult]::new('--report', '--report', [CompletionResultType]::ParameterName, 'With --delta: also judge it as a validator does (docs/validation.md) and write the signed `gym-eval-report/1` here; --data must have `answer` fields')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Validator key that signs the report')
            [CompletionResult]::new('--start', '--start', [CompletionResultType]::ParameterName, 'With --report: the delta''s start (its parent); without it the "without" model is the bare model')
            [CompletionResult]::new('--max-norm', '--max-norm', [CompletionResultType]::ParameterName, 'With --report: the L2 bound on the delta''s update')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--nf4', '--nf4', [CompletionResultType]::ParameterName, 'Quantize the base to NF4 (as training with use_4bit does)')
            [CompletionResult]::new('--enable-thinking', '--enable-thinking', [CompletionResultType]::ParameterName, 'Pass `enable_thinking=true` to the model''s chat template for `messages` rows (Qwen3)')
            [CompletionResult]::new('--samples', '--samples', [CompletionResultType]::ParameterName, 'Include every completion in the output')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON (format `gym-eval/1`)')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Overwrite the report')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;generate' {
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Hugging Face model folder (config.json, safetensors, tokenizer.json), or a hub id ORG/NAME[@REVISION] resolved through the Hugging Face cache; default: the bundled tiny random Qwen3 (for demos: its output is noise)')
            [CompletionResult]::new('--prompt', '--prompt', [CompletionResultType]::ParameterName, 'Prompt text (repeat for a batch)')
            [CompletionResult]::new('--adapter', '--adapter', [CompletionResultType]::ParameterName, 'PEFT adapter folder to apply')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Completions per prompt (a GSPO group)')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'Completions per prompt (a GSPO group)')
            [CompletionResult]::new('--max-new-tokens', '--max-new-tokens', [CompletionResultType]::ParameterName, 'Stop each completion after this many tokens (or at the end-of-sequence token)')
            [CompletionResult]::new('--temperature', '--temperature', [CompletionResultType]::ParameterName, '0 for greedy decoding')
            [CompletionResult]::new('--top-p', '--top-p', [CompletionResultType]::ParameterName, 'Nucleus sampling: keep the most likely tokens up to this probability mass')
            [CompletionResult]::new('--top-k', '--top-k', [CompletionResultType]::ParameterName, '0 disables top-k')
            [CompletionResult]::new('--seed', '--seed', [CompletionResultType]::ParameterName, 'Seed of the sampler: the same seed gives the same completions')
            [CompletionResult]::new('--device', '--device', [CompletionResultType]::ParameterName, 'Where the model runs: cpu, cuda (GPU 0) or cuda:N; a GPU needs a build with the `cuda` feature and an NVIDIA driver (else exit code 22)')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--nf4', '--nf4', [CompletionResultType]::ParameterName, 'Quantize the linear layers to NF4 (as QLoRA does)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON (format `gym-generate/1`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;plot' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'The picture to write: `.svg` or `.png` (1200 px wide, DejaVu Sans)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'The picture to write: `.svg` or `.png` (1200 px wide, DejaVu Sans)')
            [CompletionResult]::new('--metrics', '--metrics', [CompletionResultType]::ParameterName, 'Metrics to draw, one panel each, comma-separated')
            [CompletionResult]::new('--title', '--title', [CompletionResultType]::ParameterName, 'Title above the panels (default: the input''s file name)')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Replace the output if it exists')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON summary (format `gym-plot/2`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;completions' {
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;download' {
            [CompletionResult]::new('--split', '--split', [CompletionResultType]::ParameterName, 'With --dataset: the split whose data files to fetch')
            [CompletionResult]::new('--data-config', '--data-config', [CompletionResultType]::ParameterName, 'With --dataset: the configuration (first folder) when the split exists in several')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--dataset', '--dataset', [CompletionResultType]::ParameterName, 'A dataset repository (default: a model: config, tokenizer, generation config and the safetensors weights, shards by their index)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON (format `gym-download/1`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;validate' {
            [CompletionResult]::new('--orchestrator', '--orchestrator', [CompletionResultType]::ParameterName, 'Run as a job''s validator service: judge every round''s reported deltas and post signed verdicts to this orchestrator until the job ends (needs --key of a roster member with role = "validator"; policy from the job file; -o is then the folder for the rounds'' deltas and reports, default runs/validate-<id>)')
            [CompletionResult]::new('--data', '--data', [CompletionResultType]::ParameterName, 'Held-out data, JSONL with `answer` fields (the loss is their NLL per token)')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Hugging Face model folder (default: the bundled tiny Qwen3)')
            [CompletionResult]::new('--start', '--start', [CompletionResultType]::ParameterName, 'The round''s starting point (the previous aggregate, or the run''s start delta): updates are measured from it and every delta''s parent_hash must be its digest')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Validator key: signs the reports')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write the signed reports here (JSON Lines; `.json` for a single delta)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Write the signed reports here (JSON Lines; `.json` for a single delta)')
            [CompletionResult]::new('--max-norm', '--max-norm', [CompletionResultType]::ParameterName, 'L2 bound C on each update (delta minus start); larger ones fail')
            [CompletionResult]::new('--dp-noise-multiplier', '--dp-noise-multiplier', [CompletionResultType]::ParameterName, 'The job''s DP noise multiplier z: the bound becomes C + z·C·(√d + 6) for d factors')
            [CompletionResult]::new('--epoch', '--epoch', [CompletionResultType]::ParameterName, 'Required epoch of every delta (default: not checked)')
            [CompletionResult]::new('--tolerance', '--tolerance', [CompletionResultType]::ParameterName, 'Fail a delta that makes the held-out loss worse by more than this (nats per token)')
            [CompletionResult]::new('--max-tokens', '--max-tokens', [CompletionResultType]::ParameterName, 'Cap on the tokens a delta may claim as its averaging weight (the job''s assignment)')
            [CompletionResult]::new('--trusted-keys', '--trusted-keys', [CompletionResultType]::ParameterName, 'Signers must be listed here')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Evaluate only the first N examples of the data')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Overwrite the output')
            [CompletionResult]::new('--nf4', '--nf4', [CompletionResultType]::ParameterName, 'Quantize the base to NF4 (as training with use_4bit does)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON (format `gym-validate/1`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;orchestrate' {
            [CompletionResult]::new('--job', '--job', [CompletionResultType]::ParameterName, 'The job file (TOML: model, data, GSPO settings, epochs, rounds, roster, publish targets)')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'The orchestrator''s key: signs the decision log; `gym job stop` needs it')
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address to serve the API on')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Durable state: sqlite:PATH or a path (default: <job folder>/<name>.orch/state.sqlite), memory: (lost on exit), redis://HOST:PORT/DB (shared; needed for --standby). Restarting on the same store resumes the job')
            [CompletionResult]::new('--lease', '--lease', [CompletionResultType]::ParameterName, 'Seconds the lease on a Redis store lasts without renewal (renewed every third of it): how long a standby waits after the active one dies')
            [CompletionResult]::new('--advertise', '--advertise', [CompletionResultType]::ParameterName, 'The URL workers reach this orchestrator at, shown by a standby (default: http://ADDR of --listen)')
            [CompletionResult]::new('--linger', '--linger', [CompletionResultType]::ParameterName, 'Seconds to keep answering after the job is over, so workers see that it is')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--standby', '--standby', [CompletionResultType]::ParameterName, 'Start as a standby (Redis store): serve read-only answers and refuse worker requests with 503 until the active orchestrator''s lease expires, then take over the job')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;work' {
            [CompletionResult]::new('--orchestrator', '--orchestrator', [CompletionResultType]::ParameterName, 'The orchestrator''s URL (as `gym orchestrate` prints it), or several, comma-separated (an active orchestrator and its standbys): a dead one or a standby is skipped')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'This worker''s key (its id must be on the job''s roster)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output folder (metrics, deltas, the final adapter). Default: runs/work-<worker id>')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output folder (metrics, deltas, the final adapter). Default: runs/work-<worker id>')
            [CompletionResult]::new('--ring-addr', '--ring-addr', [CompletionResultType]::ParameterName, 'Address the other ring members dial (default: 127.0.0.1 and a free port). In a round past the job''s ring_size a leader''s leader rings use the next ports (PORT+1 to PORT+3)')
            [CompletionResult]::new('--ring-timeout', '--ring-timeout', [CompletionResultType]::ParameterName, 'Seconds without progress before a ring member is dropped')
            [CompletionResult]::new('--attack', '--attack', [CompletionResultType]::ParameterName, 'Test seam for the attack table (docs/validation.md): misbehave as KIND. Hidden')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON summary at the end (format `gym-work/1`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;job' {
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Workers and their state, the current epoch and round, reward and loss per accepted round, published checkpoints')
            [CompletionResult]::new('stop', 'stop', [CompletionResultType]::ParameterValue, 'Stop the job (signed with the orchestrator''s key)')
            [CompletionResult]::new('log', 'log', [CompletionResultType]::ParameterValue, 'Fetch the signed decision log and check every signature and the hash chain')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gym;job;status' {
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print `gym-job-status/1` JSON')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;job;stop' {
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'The orchestrator''s key')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;job;log' {
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the entries as JSON (after checking them)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;job;help' {
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Workers and their state, the current epoch and round, reward and loss per accepted round, published checkpoints')
            [CompletionResult]::new('stop', 'stop', [CompletionResultType]::ParameterValue, 'Stop the job (signed with the orchestrator''s key)')
            [CompletionResult]::new('log', 'log', [CompletionResultType]::ParameterValue, 'Fetch the signed decision log and check every signature and the hash chain')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gym;job;help;status' {
            break
        }
        'gym;job;help;stop' {
            break
        }
        'gym;job;help;log' {
            break
        }
        'gym;job;help;help' {
            break
        }
        'gym;demo' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Folder for the job file, the orchestrator''s state, the workers'' runs and the published checkpoints (an earlier demo there is replaced)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Folder for the job file, the orchestrator''s state, the workers'' runs and the published checkpoints (an earlier demo there is replaced)')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads for parallel work (default: one per core)')
            [CompletionResult]::new('--blas', '--blas', [CompletionResultType]::ParameterName, 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON summary at the end (format `gym-demo/1`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr except errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'gym;help' {
            [CompletionResult]::new('keygen', 'keygen', [CompletionResultType]::ParameterValue, 'Create a worker key (Ed25519, optionally with ML-DSA-87)')
            [CompletionResult]::new('key', 'key', [CompletionResultType]::ParameterValue, 'Work with key files')
            [CompletionResult]::new('delta', 'delta', [CompletionResultType]::ParameterValue, 'Pack, unpack, inspect, verify and compare DELTA files')
            [CompletionResult]::new('reward', 'reward', [CompletionResultType]::ParameterValue, 'Estimate epoch rewards; sign and verify reward claims')
            [CompletionResult]::new('ring', 'ring', [CompletionResultType]::ParameterValue, 'Average deltas with other workers: authenticated, encrypted, verifiable ring all-reduce')
            [CompletionResult]::new('cid', 'cid', [CompletionResultType]::ParameterValue, 'Print the CIDs `ipfs add` would give files or directories, computed offline')
            [CompletionResult]::new('publish', 'publish', [CompletionResultType]::ParameterValue, 'Publish a file or folder: to a local CID-named folder, an IPFS node, the Hugging Face Hub')
            [CompletionResult]::new('model', 'model', [CompletionResultType]::ParameterValue, 'Inspect model folders (architecture, parameters, memory, LoRA size)')
            [CompletionResult]::new('train', 'train', [CompletionResultType]::ParameterValue, 'Fine-tune with GSPO (LoRA over an NF4 base); write metrics, checkpoints, signed deltas')
            [CompletionResult]::new('eval', 'eval', [CompletionResultType]::ParameterValue, 'Evaluate a model or adapter: mean reward, accuracy, NLL of reference answers')
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Complete prompts with a model (default: the bundled tiny Qwen3)')
            [CompletionResult]::new('plot', 'plot', [CompletionResultType]::ParameterValue, 'Draw training curves (metrics JSON Lines) into an SVG, one panel per metric')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('download', 'download', [CompletionResultType]::ParameterValue, 'Download a model or dataset by hub id into the Hugging Face cache; print its folder')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check a round''s deltas (signature, sequence, base, norm, held-out loss); signed verdicts')
            [CompletionResult]::new('orchestrate', 'orchestrate', [CompletionResultType]::ParameterValue, 'Run a job''s orchestrator: rounds, rings, signed decision log, checkpoint publishing')
            [CompletionResult]::new('work', 'work', [CompletionResultType]::ParameterValue, 'Train for an orchestrator''s job: register, train, report, join each round''s ring')
            [CompletionResult]::new('job', 'job', [CompletionResultType]::ParameterValue, 'Inspect or stop a running job')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'The whole protocol on one machine: an orchestrator and 3 workers, 2 epochs, on loopback')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gym;help;keygen' {
            break
        }
        'gym;help;key' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show the public identity of a key file: worker id and public keys')
            break
        }
        'gym;help;key;show' {
            break
        }
        'gym;help;delta' {
            [CompletionResult]::new('pack', 'pack', [CompletionResultType]::ParameterValue, 'Pack a .safetensors file or a PEFT adapter folder into a DELTA file')
            [CompletionResult]::new('unpack', 'unpack', [CompletionResultType]::ParameterValue, 'Unpack a DELTA file to .safetensors (or a PEFT adapter folder), checking it fully')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show a DELTA file''s header, metadata, tensors and signer (reads headers only)')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Verify DELTA files: structure, checksum, signatures, trust and policy')
            [CompletionResult]::new('diff', 'diff', [CompletionResultType]::ParameterValue, 'Compare two DELTA files tensor by tensor (L2 distance, max abs difference, cosine)')
            break
        }
        'gym;help;delta;pack' {
            break
        }
        'gym;help;delta;unpack' {
            break
        }
        'gym;help;delta;inspect' {
            break
        }
        'gym;help;delta;verify' {
            break
        }
        'gym;help;delta;diff' {
            break
        }
        'gym;help;reward' {
            [CompletionResult]::new('estimate', 'estimate', [CompletionResultType]::ParameterValue, 'Estimate an epoch''s rewards from an epoch folder or a contributions file')
            [CompletionResult]::new('claim', 'claim', [CompletionResultType]::ParameterValue, 'Sign a reward claim binding your signed delta (digest, CID) to its compute record')
            [CompletionResult]::new('verify-claim', 'verify-claim', [CompletionResultType]::ParameterValue, 'Verify a reward claim''s signature, and optionally that it matches a delta')
            [CompletionResult]::new('economics', 'economics', [CompletionResultType]::ParameterValue, 'Print the economics in effect as TOML (the defaults, or FILE with defaults filled in)')
            break
        }
        'gym;help;reward;estimate' {
            break
        }
        'gym;help;reward;claim' {
            break
        }
        'gym;help;reward;verify-claim' {
            break
        }
        'gym;help;reward;economics' {
            break
        }
        'gym;help;ring' {
            [CompletionResult]::new('plan', 'plan', [CompletionResultType]::ParameterValue, 'Write a ring file from lines of `ADDRESS PUBLIC-KEY` (or `ADDRESS {gym key show --json}`)')
            [CompletionResult]::new('join', 'join', [CompletionResultType]::ParameterValue, 'Join a ring, run one all-reduce (weighted mean of the members'' deltas), write the result')
            [CompletionResult]::new('audit', 'audit', [CompletionResultType]::ParameterValue, 'Audit a result of `gym ring join` offline: receipts, transcript, members'' inputs, mean')
            break
        }
        'gym;help;ring;plan' {
            break
        }
        'gym;help;ring;join' {
            break
        }
        'gym;help;ring;audit' {
            break
        }
        'gym;help;cid' {
            break
        }
        'gym;help;publish' {
            break
        }
        'gym;help;model' {
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show a model folder''s architecture, parameters, memory and LoRA size')
            break
        }
        'gym;help;model;inspect' {
            break
        }
        'gym;help;train' {
            break
        }
        'gym;help;eval' {
            break
        }
        'gym;help;generate' {
            break
        }
        'gym;help;plot' {
            break
        }
        'gym;help;completions' {
            break
        }
        'gym;help;download' {
            break
        }
        'gym;help;validate' {
            break
        }
        'gym;help;orchestrate' {
            break
        }
        'gym;help;work' {
            break
        }
        'gym;help;job' {
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Workers and their state, the current epoch and round, reward and loss per accepted round, published checkpoints')
            [CompletionResult]::new('stop', 'stop', [CompletionResultType]::ParameterValue, 'Stop the job (signed with the orchestrator''s key)')
            [CompletionResult]::new('log', 'log', [CompletionResultType]::ParameterValue, 'Fetch the signed decision log and check every signature and the hash chain')
            break
        }
        'gym;help;job;status' {
            break
        }
        'gym;help;job;stop' {
            break
        }
        'gym;help;job;log' {
            break
        }
        'gym;help;demo' {
            break
        }
        'gym;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
