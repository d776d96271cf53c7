# UNTESTED (written without Windows). Adds or removes the per-user startup entry for
# gui-approver: a shortcut in the user's Startup folder that runs `gui-approverw.exe app`
# (the windowed build, so no console window appears at login).
#
#   powershell -ExecutionPolicy Bypass -File startup.ps1 -Enable  -Exe "C:\...\gui-approverw.exe"
#   powershell -ExecutionPolicy Bypass -File startup.ps1 -Disable
#
# (The alternative, a value under HKCU\Software\Microsoft\Windows\CurrentVersion\Run, works
# too; a shortcut is easier for users to see and remove in Explorer / Task Manager.)
param(
    [switch]$Enable,
    [switch]$Disable,
    [string]$Exe = (Join-Path $PSScriptRoot "gui-approverw.exe")
)
$startup = [Environment]::GetFolderPath("Startup")
$link = Join-Path $startup "gui-approver.lnk"
if ($Enable) {
    if (-not (Test-Path $Exe)) { throw "no such executable: $Exe" }
    $shell = New-Object -ComObject WScript.Shell
    $shortcut = $shell.CreateShortcut($link)
    $shortcut.TargetPath = (Resolve-Path $Exe).Path
    $shortcut.Arguments = "app"
    $shortcut.WorkingDirectory = Split-Path (Resolve-Path $Exe).Path
    $shortcut.Description = "gui-approver: approve every cargo publish before it is signed"
    $shortcut.Save()
    Write-Output "gui-approver will start when you log in ($link)."
} elseif ($Disable) {
    if (Test-Path $link) { Remove-Item $link; Write-Output "Removed $link." }
    else { Write-Output "Autostart was not enabled." }
} else {
    Write-Output "usage: startup.ps1 -Enable [-Exe PATH] | -Disable"
}
